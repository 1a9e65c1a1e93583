//! A streaming writer of 2-D little-endian f32 `.npy` files (NumPy format version 1.0), rows
//! appended as they come.
//!
//! Hand-written rather than taken from a crate (`npyz`, `ndarray-npy`) because the logits dump
//! learns its number of rows only at the end of a run, and those crates want the shape before
//! the first element: here the header is written with room for any shape (padded to
//! [`HEADER_LEN`] bytes, as the format allows) and rewritten with the real one at
//! [`NpyWriter::finish`], so that rows stream to disk instead of piling up in memory. The format
//! itself is a magic string, a version, a length and a Python dict literal:
//! <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.

use std::io::{self, Seek, SeekFrom, Write};

/// The whole header's length in bytes (magic, version, length field, dict, padding, newline):
/// a multiple of 64 as NumPy recommends, and room for the dict of any two `u64` dimensions.
pub const HEADER_LEN: usize = 128;

/// `\x93NUMPY`, then version 1.0.
const MAGIC: &[u8; 8] = b"\x93NUMPY\x01\x00";

/// The header of a C-order little-endian f32 array of `shape`, [`HEADER_LEN`] bytes long.
pub fn header(shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic (8) + the header length (2), then the dict padded with spaces to end in '\n'.
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&((HEADER_LEN - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    assert!(
        out.len() < HEADER_LEN,
        "the .npy header of shape {shape:?} does not fit {HEADER_LEN} bytes"
    );
    out.resize(HEADER_LEN - 1, b' ');
    out.push(b'\n');
    out
}

/// Rows of `cols` f32 values appended to `out`; the shape `[rows, cols]` is written at
/// [`NpyWriter::finish`].
pub struct NpyWriter<W: Write + Seek> {
    out: W,
    cols: usize,
    rows: usize,
}

impl<W: Write + Seek> NpyWriter<W> {
    /// Writes a provisional header (zero rows) at the start of `out`.
    pub fn new(mut out: W, cols: usize) -> io::Result<NpyWriter<W>> {
        out.write_all(&header(&[0, cols]))?;
        Ok(NpyWriter { out, cols, rows: 0 })
    }

    /// Appends rows: `values` holds whole rows of `cols` (a partial row is refused).
    pub fn push(&mut self, values: &[f32]) -> io::Result<()> {
        if values.len().checked_rem(self.cols) != Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} values are not whole rows of {}",
                    values.len(),
                    self.cols
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&bytes)?;
        self.rows += values.len() / self.cols;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Rewrites the header with the final shape and hands back the stream (positioned at the
    /// end of the data).
    pub fn finish(mut self) -> io::Result<W> {
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header(&[self.rows, self.cols]))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// An independent reading of a 2-D f32 `.npy`: the header fields by the format's
    /// definition, then the data.
    fn parse(bytes: &[u8]) -> (Vec<usize>, Vec<f32>) {
        assert_eq!(&bytes[..6], b"\x93NUMPY", "magic");
        assert_eq!((bytes[6], bytes[7]), (1, 0), "version 1.0");
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let data_at = 10 + len;
        assert_eq!(data_at % 64, 0, "the data starts 64-byte aligned");
        let dict = std::str::from_utf8(&bytes[10..data_at]).unwrap();
        assert!(dict.ends_with('\n'), "{dict:?}");
        let dict = dict.trim_end();
        assert!(dict.starts_with('{') && dict.ends_with('}'), "{dict:?}");
        assert!(dict.contains("'descr': '<f4'"), "{dict:?}");
        assert!(dict.contains("'fortran_order': False"), "{dict:?}");
        let shape = &dict[dict.find("'shape': (").unwrap() + 10..];
        let shape: Vec<usize> = shape[..shape.find(')').unwrap()]
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let data = bytes[data_at..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (shape, data)
    }

    #[test]
    fn rows_stream_and_the_shape_is_written_at_the_end() {
        let mut w = NpyWriter::new(Cursor::new(Vec::new()), 3).unwrap();
        w.push(&[1.0, -2.5, 3.0]).unwrap();
        w.push(&[f32::MAX, f32::MIN_POSITIVE, 0.0, 4.0, 5.0, 6.0])
            .unwrap();
        assert_eq!(w.rows(), 3);
        let bytes = w.finish().unwrap().into_inner();
        assert_eq!(bytes.len(), HEADER_LEN + 9 * 4);
        let (shape, data) = parse(&bytes);
        assert_eq!(shape, [3, 3]);
        assert_eq!(
            data,
            [
                1.0,
                -2.5,
                3.0,
                f32::MAX,
                f32::MIN_POSITIVE,
                0.0,
                4.0,
                5.0,
                6.0
            ]
        );
    }

    #[test]
    fn no_rows_is_a_valid_empty_array() {
        let w = NpyWriter::new(Cursor::new(Vec::new()), 32000).unwrap();
        let (shape, data) = parse(&w.finish().unwrap().into_inner());
        assert_eq!((shape, data.len()), (vec![0, 32000], 0));
    }

    /// The header is as NumPy writes it, byte for byte (`np.save` of `np.zeros((2, 5), '<f4')`
    /// pads its dict to 128 bytes in all), and any shape fits.
    #[test]
    fn the_header_is_numpys() {
        let mut want =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), }"
                .to_vec();
        want.resize(127, b' ');
        want.push(b'\n');
        assert_eq!(header(&[2, 5]), want);
        assert_eq!(header(&[7]).len(), HEADER_LEN);
        assert!(String::from_utf8_lossy(&header(&[7])).contains("'shape': (7,)"));
        let big = header(&[usize::MAX, usize::MAX]);
        assert_eq!(parse(&big).0, [usize::MAX, usize::MAX]);
    }

    #[test]
    fn a_partial_row_is_refused() {
        let mut w = NpyWriter::new(Cursor::new(Vec::new()), 4).unwrap();
        let e = w.push(&[1.0; 6]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(w.rows(), 0);
    }
}
