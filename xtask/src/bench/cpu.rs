//! CPU time of the benchmark's processes (from /proc), for what a request costs the machine
//! whatever its speed: the servers, PostgreSQL and the load generator, per 1,000 requests.
//!
//! On a virtual machine whose speed moves from minute to minute (time stolen by the hypervisor),
//! requests per second of two configurations measured minutes apart can differ by half; the CPU
//! time a request took moves much less, so a cost per request says which configuration does more
//! work for the same requests when throughput alone cannot.

use std::ops::AddAssign;

/// Clock ticks per second of /proc's times (`USER_HZ`: 100 on every Linux ABI).
const TICKS_PER_S: f64 = 100.0;

/// CPU time taken by each group of processes over some requests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Cost {
    /// The `invites serve` processes, ms.
    pub(super) servers_ms: f64,
    /// The cluster's processes (postmaster, backends, writers), ms.
    pub(super) postgres_ms: f64,
    /// The load generator, ms.
    pub(super) loadgen_ms: f64,
    /// Requests answered meanwhile, warm-up included.
    pub(super) requests: u64,
}

impl AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        self.servers_ms += other.servers_ms;
        self.postgres_ms += other.postgres_ms;
        self.loadgen_ms += other.loadgen_ms;
        self.requests += other.requests;
    }
}

impl Cost {
    /// CPU time so far of the servers `servers` (process ids), the cluster under `postmaster`
    /// and this process's waited-for children (the load generators that ended), no requests.
    pub(super) fn now(servers: &[u32], postmaster: Option<u32>) -> Cost {
        Cost {
            servers_ms: servers.iter().map(|&pid| process_ms(pid)).sum(),
            postgres_ms: postmaster.map_or(0.0, tree_ms),
            loadgen_ms: waited_children_ms(),
            requests: 0,
        }
    }

    /// What was added since `before` (both from [`Cost::now`]).
    pub(super) fn minus(self, before: Cost) -> Cost {
        Cost {
            servers_ms: self.servers_ms - before.servers_ms,
            postgres_ms: self.postgres_ms - before.postgres_ms,
            loadgen_ms: self.loadgen_ms - before.loadgen_ms,
            requests: self.requests.saturating_sub(before.requests),
        }
    }

    /// Milliseconds of CPU per 1,000 requests: servers, PostgreSQL, load generator, all three.
    pub(super) fn per_thousand(&self) -> [f64; 4] {
        let per = |ms: f64| 1000.0 * ms / (self.requests.max(1) as f64);
        let (s, p, l) = (
            per(self.servers_ms),
            per(self.postgres_ms),
            per(self.loadgen_ms),
        );
        [s, p, l, s + p + l]
    }
}

/// User and system time of `stat` (a `/proc/<pid>/stat` line), with the times of its waited-for
/// children if `children`, in ms; None if the line is not one.
fn stat_ms(stat: &str, children: bool) -> Option<f64> {
    let fields = fields_after_name(stat)?;
    // utime and stime are fields 14 and 15 of the line, cutime and cstime 16 and 17: here 11-14.
    let wanted = if children { 13..15 } else { 11..13 };
    let mut ticks = 0u64;
    for field in fields.get(wanted)? {
        ticks += field.parse::<u64>().ok()?;
    }
    Some(ticks as f64 * 1000.0 / TICKS_PER_S)
}

/// The parent's process id of `stat`.
fn stat_parent(stat: &str) -> Option<u32> {
    fields_after_name(stat)?.get(1)?.parse().ok()
}

/// The fields of `stat` after the command name, from the state (the line's third field) on: the
/// name may hold spaces and parentheses, so they are counted after its last ')'.
fn fields_after_name(stat: &str) -> Option<Vec<&str>> {
    Some(stat.get(stat.rfind(')')? + 2..)?.split(' ').collect())
}

fn read_stat(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

/// CPU time of `pid` so far, ms (0 once it is gone).
pub(super) fn process_ms(pid: u32) -> f64 {
    read_stat(pid)
        .and_then(|s| stat_ms(&s, false))
        .unwrap_or(0.0)
}

/// CPU time of `pid` and its children now running, ms: a PostgreSQL cluster from its postmaster.
pub(super) fn tree_ms(pid: u32) -> f64 {
    let mut ms = process_ms(pid);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ms;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = read_stat(child) {
            if stat_parent(&stat) == Some(pid) {
                ms += stat_ms(&stat, false).unwrap_or(0.0);
            }
        }
    }
    ms
}

/// CPU time of this process's children that ended and were waited for, ms: a load generator
/// run with `Command::output`, as the difference around it.
pub(super) fn waited_children_ms() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_ms(&s, true))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_after_the_command_name_whatever_it_holds() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime ...
        let line = "42 (post gres) x) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 1";
        assert_eq!(stat_ms(line, false), Some(3000.0));
        assert_eq!(stat_ms(line, true), Some(500.0));
        assert_eq!(stat_parent(line), Some(7));
        assert_eq!(stat_ms("not a stat line", false), None);
    }

    #[test]
    fn this_process_has_used_some_cpu_and_a_cost_divides_by_its_requests() {
        let busy: u64 = (0..2_000_000u64).map(|i| i % 7).sum();
        assert!(busy > 0);
        let me = std::process::id();
        let before = process_ms(me);
        assert!(before > 0.0);
        // Read before the tree, not after: the walk over /proc costs CPU time of its own, which
        // a reading after it counted (11 ms and more on a busy machine made the test fail).
        assert!(tree_ms(me) >= before);
        let mut cost = Cost {
            servers_ms: 300.0,
            postgres_ms: 100.0,
            loadgen_ms: 100.0,
            requests: 2000,
        };
        cost += cost;
        assert_eq!(cost.per_thousand(), [150.0, 50.0, 50.0, 250.0]);
    }
}
