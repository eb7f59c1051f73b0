//! What `/proc` says about a process (CPU time, memory) and about TCP connections.
//!
//! Linux only; elsewhere every reading is `None` and the report says "n/a".

use std::collections::HashMap;

/// `/proc/PID/stat` counts CPU time in clock ticks of `USER_HZ`, which the kernel fixes at 100
/// for user space on every architecture Linux supports (reading `sysconf(_SC_CLK_TCK)` would
/// need `unsafe`, which the workspace forbids).
pub const TICKS_PER_SEC: f64 = 100.0;

/// A process to watch: `self` or a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    Me,
    Other(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Pid::Me => "/proc/self".into(),
            Pid::Other(p) => format!("/proc/{p}"),
        }
    }
}

/// User + system CPU ticks the process has used so far (all threads).
pub fn cpu_ticks(pid: Pid) -> Option<u64> {
    let s = std::fs::read_to_string(format!("{}/stat", pid.dir())).ok()?;
    parse_stat_ticks(&s)
}

/// utime + stime from a `/proc/PID/stat` line. The command name (field 2) may contain spaces
/// and parentheses, so fields are counted from the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    // cmajflt utime(14) stime(15). Index 0 here is field 3.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks of each thread of a process: (thread id, thread name, user + system ticks).
pub fn thread_ticks(pid: Pid) -> Vec<(u32, String, u64)> {
    let Ok(dir) = std::fs::read_dir(format!("{}/task", pid.dir())) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_owned();
        Some((tid, name, parse_stat_ticks(&stat)?))
    })
    .collect()
}

/// Cores each thread used between two [`thread_ticks`] readings `secs` apart, busiest first
/// (threads that exist in both readings).
pub fn thread_cores(
    before: &[(u32, String, u64)],
    after: &[(u32, String, u64)],
    secs: f64,
) -> Vec<(String, f64)> {
    if secs <= 0.0 {
        return Vec::new();
    }
    let mut out: Vec<(String, f64)> = after
        .iter()
        .filter_map(|(tid, name, t1)| {
            let (_, _, t0) = before.iter().find(|(t, _, _)| t == tid)?;
            Some((
                name.clone(),
                t1.saturating_sub(*t0) as f64 / TICKS_PER_SEC / secs,
            ))
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Resident memory now and its peak so far (`VmRSS`, `VmHWM`), in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

pub fn memory(pid: Pid) -> Option<Memory> {
    let s = std::fs::read_to_string(format!("{}/status", pid.dir())).ok()?;
    parse_status_memory(&s)
}

pub fn parse_status_memory(status: &str) -> Option<Memory> {
    let field = |key: &str| {
        status.lines().find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix(':')?;
            v.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let rss_kb = field("VmRSS")?;
    Some(Memory {
        rss_kb,
        hwm_kb: field("VmHWM").unwrap_or(rss_kb),
    })
}

/// CPU cores used between two tick readings `secs` apart.
pub fn cores(ticks_before: Option<u64>, ticks_after: Option<u64>, secs: f64) -> Option<f64> {
    let (a, b) = (ticks_before?, ticks_after?);
    if secs <= 0.0 {
        return None;
    }
    Some(b.saturating_sub(a) as f64 / TICKS_PER_SEC / secs)
}

/// Busy CPU ticks of the whole machine so far (all CPUs: everything but idle and iowait), from
/// the first line of `/proc/stat`. Over a window, busy − server − bench = everything else
/// running on the machine.
pub fn machine_busy_ticks() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    parse_proc_stat_busy(&s)
}

pub fn parse_proc_stat_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?;
    let mut f = line.split_whitespace();
    if f.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let v: Vec<u64> = f.take(8).map(|x| x.parse().unwrap_or(0)).collect();
    if v.len() < 5 {
        return None;
    }
    Some(v.iter().sum::<u64>() - v[3] - v[4])
}

/// TCP state `01` in `/proc/net/tcp`.
pub const TCP_ESTABLISHED: u8 = 0x01;

/// TCP connections of this network namespace that have `port` at one end, keyed by
/// (local port, remote port), from `/proc/net/tcp` and `/proc/net/tcp6`. On loopback both
/// ends of each connection appear: the client's (local = ephemeral port) and the server's
/// (local = `port`). A socket the kernel has aborted or reset leaves the table.
pub fn tcp_states(port: u16) -> HashMap<(u16, u16), u8> {
    let mut out = HashMap::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            parse_net_tcp(&text, port, &mut out);
        }
    }
    out
}

pub fn parse_net_tcp(text: &str, port: u16, out: &mut HashMap<(u16, u16), u8>) {
    for line in text.lines().skip(1) {
        let mut f = line.split_whitespace();
        let (Some(_sl), Some(local), Some(remote), Some(state)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let port_of = |addr: &str| {
            addr.rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        };
        let (Some(lp), Some(rp), Ok(st)) = (
            port_of(local),
            port_of(remote),
            u8::from_str_radix(state, 16),
        ) else {
            continue;
        };
        if lp == port || rp == port {
            out.insert((lp, rp), st);
        }
    }
}

/// Whether the connection between a client's `client_port` and the server's `server_port` is
/// still open. The client's side must be listed and ESTABLISHED (a FIN moves it to
/// CLOSE_WAIT, a reset removes it). When the server listens on this machine (its listening
/// socket, remote port 0, is in the table) its side must be ESTABLISHED too: a server that
/// aborts a connection whose peer never reads sends nothing the peer could notice, so only
/// the server's side shows it.
pub fn still_open(table: &HashMap<(u16, u16), u8>, client_port: u16, server_port: u16) -> bool {
    let client_side = table.get(&(client_port, server_port)).copied();
    if client_side != Some(TCP_ESTABLISHED) {
        return false;
    }
    if table.contains_key(&(server_port, 0)) {
        return table.get(&(server_port, client_port)).copied() == Some(TCP_ESTABLISHED);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_skip_odd_names() {
        let stat = "1234 (my (weird) name) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 100 1000 200";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_memory() {
        let status = "Name:\tstreamhub\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status_memory(status),
            Some(Memory {
                rss_kb: 102_400,
                hwm_kb: 204_800
            })
        );
        assert_eq!(parse_status_memory("Name: x\n"), None);
    }

    #[test]
    fn proc_stat_busy() {
        let stat = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(parse_proc_stat_busy(stat), Some(160));
        assert_eq!(parse_proc_stat_busy("intr 1 2\n"), None);
    }

    #[test]
    fn per_thread_cores() {
        let before = vec![(1, "main".to_owned(), 100), (2, "worker".to_owned(), 10)];
        let after = vec![
            (1, "main".to_owned(), 110),
            (2, "worker".to_owned(), 210),
            (3, "new".to_owned(), 5),
        ];
        let c = thread_cores(&before, &after, 2.0);
        assert_eq!(
            c,
            vec![("worker".to_owned(), 1.0), ("main".to_owned(), 0.05)]
        );
        if cfg!(target_os = "linux") {
            assert!(!thread_ticks(Pid::Me).is_empty());
        }
    }

    #[test]
    fn cores_math() {
        assert_eq!(cores(Some(100), Some(250), 1.5), Some(1.0));
        assert_eq!(cores(None, Some(1), 1.0), None);
        assert_eq!(cores(Some(1), Some(2), 0.0), None);
    }

    #[test]
    fn net_tcp_pairs() {
        // Port 3000 = 0x0BB8; client port 40000 = 0x9C40.
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:0BB8 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n\
   2: 0100007F:9C40 0100007F:0BB8 08 00000000:00010000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n\
   3: 0100007F:1F90 0100007F:9C41 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0 20 4 30 10 -1\n";
        let mut t = HashMap::new();
        parse_net_tcp(text, 3000, &mut t);
        assert_eq!(t.len(), 3, "the other port's connection is left out");
        assert_eq!(t.get(&(3000, 0)), Some(&0x0A), "the listener");
        assert_eq!(t.get(&(3000, 40000)), Some(&TCP_ESTABLISHED));
        // The client side got a FIN (CLOSE_WAIT): the server closed it.
        assert!(!still_open(&t, 40000, 3000));
        t.insert((40000, 3000), TCP_ESTABLISHED);
        assert!(still_open(&t, 40000, 3000));
        t.remove(&(3000, 40000));
        assert!(!still_open(&t, 40000, 3000), "server side aborted");
        t.remove(&(3000, 0));
        assert!(
            still_open(&t, 40000, 3000),
            "a remote server: only the client side can tell"
        );
    }

    #[test]
    fn reads_this_process() {
        if cfg!(target_os = "linux") {
            assert!(cpu_ticks(Pid::Me).is_some());
            let m = memory(Pid::Me).expect("status");
            assert!(m.rss_kb > 0 && m.hwm_kb >= m.rss_kb);
        }
    }
}
