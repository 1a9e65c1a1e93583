//! Work spread over every core, with a progress bar: compiling kernels (clang and ptxas run as
//! child processes, so one worker per core keeps them busy) and checking them on the
//! interpreter. One definition for `greta build`, `greta inspect` and `greta tune`.

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

/// A progress bar over `len` items, `what` naming the work (`compiling`, `building`).
pub fn bar(what: &str, len: usize) -> ProgressBar {
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} (ETA {{eta}}) {{msg}}"
        ))
        .expect("a valid template"),
    )
}

/// `f` over `items` on one worker per core, results in `items`' order. `label` names the item
/// a worker starts on (the bar's message). The bar is cleared at the end.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    bar: &ProgressBar,
    label: impl Fn(&T) -> String + Sync,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(items.len().max(1));
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().expect("no worker panics while holding it");
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(item) = items.get(i) else { break };
                bar.set_message(label(item));
                let r = f(item);
                results.lock().expect("no worker panics while holding it")[i] = Some(r);
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    results
        .into_inner()
        .expect("workers are done")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}
