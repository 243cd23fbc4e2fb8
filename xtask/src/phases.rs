//! The phases of a long run (`cargo xtask test`): each announced with the time elapsed since the
//! run began, timed, and listed in a table at the end, so a slow or failed phase is named.

use std::time::{Duration, Instant};

use anyhow::Result;

/// How a phase ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Skipped(String),
}

/// The phases run so far.
pub struct Phases {
    started: Instant,
    done: Vec<(String, Duration, Outcome)>,
}

/// `mm:ss` of a duration.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}

impl Phases {
    pub fn new() -> Phases {
        Phases {
            started: Instant::now(),
            done: Vec::new(),
        }
    }

    /// Runs one phase: a heading with the elapsed time, then its own output, then how long it took.
    pub fn run<T>(&mut self, title: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        println!("\n==> [{}] {title}", clock(self.started.elapsed()));
        let began = Instant::now();
        let result = f();
        let took = began.elapsed();
        let outcome = match &result {
            Ok(_) => Outcome::Passed,
            Err(_) => Outcome::Failed,
        };
        println!(
            "    {} in {:.1} s",
            if result.is_ok() { "done" } else { "FAILED" },
            took.as_secs_f64()
        );
        self.done.push((title.to_owned(), took, outcome));
        result
    }

    /// Records a phase that did not run, and why.
    pub fn skip(&mut self, title: &str, why: &str) {
        println!(
            "\n==> [{}] {title}: SKIPPED ({why})",
            clock(self.started.elapsed())
        );
        self.done.push((
            title.to_owned(),
            Duration::ZERO,
            Outcome::Skipped(why.into()),
        ));
    }

    /// The table of phases: title, duration, outcome; then the total.
    pub fn table(&self) -> String {
        let width = self
            .done
            .iter()
            .map(|(t, _, _)| t.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!("{:<width$}  {:>8}  result\n", "phase", "seconds");
        for (title, took, outcome) in &self.done {
            let result = match outcome {
                Outcome::Passed => "ok".to_owned(),
                Outcome::Failed => "FAILED".to_owned(),
                Outcome::Skipped(why) => format!("skipped: {why}"),
            };
            out.push_str(&format!(
                "{title:<width$}  {:>8.1}  {result}\n",
                took.as_secs_f64()
            ));
        }
        out.push_str(&format!(
            "{:<width$}  {:>8.1}  ({})\n",
            "total",
            self.started.elapsed().as_secs_f64(),
            clock(self.started.elapsed())
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_phase_and_how_it_ended() {
        let mut p = Phases::new();
        p.run("first", || Ok(())).unwrap();
        assert!(p
            .run("second", || -> Result<()> { anyhow::bail!("broken") })
            .is_err());
        p.skip("third", "no PostgreSQL");
        let table = p.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[1].starts_with("first ") && lines[1].ends_with(" ok"));
        assert!(lines[2].ends_with(" FAILED"));
        assert!(lines[3].ends_with("skipped: no PostgreSQL"));
        assert!(lines[4].starts_with("total"));
        assert_eq!(clock(Duration::from_secs(754)), "12:34");
    }
}
