//! OOM kills that already happened: from a cgroup's counter (the victim is
//! the process that vanished), from the host's counter, from the kernel
//! log (the pid names the victim), and both sources of one kill giving one
//! finding.

use memlens_analyze::{Config, Engine, Finding, KernelKill, OOM_KILL};
use memlens_model::series::{Entity, Point};

const MIB: f64 = 1048576.0;

fn p(entity: &Entity, metric: &'static str, value: f64) -> Point {
    Point {
        entity: entity.clone(),
        metric,
        value,
    }
}

fn process(pid: i32) -> Entity {
    Entity::Process {
        pid,
        start_time: 1000 + pid as u64,
    }
}

fn app() -> Entity {
    Entity::Cgroup {
        path: "/app".to_string(),
    }
}

/// Two processes in /app (big: 180 MiB, small: 20 MiB) and one outside,
/// sampled every 5 s for 60 s; then `after` decides who is still there and
/// what the counters say. Returns every kill finding.
fn run(engine: &mut Engine, after: impl Fn(i64, &mut Vec<Point>), until_s: i64) -> Vec<Finding> {
    let (big, small, other) = (process(10), process(11), process(12));
    engine.set_process_cgroup(&big, "/app");
    engine.set_process_cgroup(&small, "/app");
    engine.set_process_cgroup(&other, "/");
    let mut kills = Vec::new();
    for t in (0..=until_s).step_by(5) {
        let mut points = vec![p(&Entity::Host, "oom_kills", 3.0)];
        if t < 60 {
            points.push(p(&big, "rss_bytes", 180.0 * MIB));
            points.push(p(&small, "rss_bytes", 20.0 * MIB));
            points.push(p(&other, "rss_bytes", 500.0 * MIB));
            points.push(p(&app(), "usage_bytes", 200.0 * MIB));
            points.push(p(&app(), "effective_limit_bytes", 256.0 * MIB));
            points.push(p(&app(), "oom_kill_count", 0.0));
        } else {
            after(t, &mut points);
        }
        kills.extend(
            engine
                .observe(t * 1000, &points)
                .into_iter()
                .filter(|f| f.id == OOM_KILL),
        );
    }
    kills
}

#[test]
fn a_cgroup_counter_kill_names_the_process_that_vanished() {
    let mut engine = Engine::new(Config::default());
    let kills = run(
        &mut engine,
        |_, points| {
            // The big one is gone; the counter moved, and the host's with it.
            points.retain(|p| p.entity != Entity::Host);
            points.push(p(&Entity::Host, "oom_kills", 4.0));
            points.push(p(&process(11), "rss_bytes", 20.0 * MIB));
            points.push(p(&process(12), "rss_bytes", 500.0 * MIB));
            points.push(p(&app(), "usage_bytes", 20.0 * MIB));
            points.push(p(&app(), "oom_kill_count", 1.0));
        },
        80,
    );
    assert_eq!(
        kills.len(),
        1,
        "one kill, not a host one on top: {kills:#?}"
    );
    let kill = &kills[0];
    assert_eq!(kill.target, process(10));
    assert_eq!(kill.fired_at_ms, 60_000);
    assert_eq!(kill.cleared_at_ms, Some(60_000), "an event");
    assert_eq!(kill.evidence("last_sample_at_ms"), Some(55_000.0));
    assert_eq!(kill.evidence("last_rss_bytes"), Some(180.0 * MIB));
    assert_eq!(kill.evidence("cgroup_limit_bytes"), Some(256.0 * MIB));
    assert_eq!(kill.evidence("oom_kill_count"), Some(1.0));
}

#[test]
fn a_victim_still_exiting_when_the_counter_moved_is_found_at_the_next_sample() {
    let mut engine = Engine::new(Config::default());
    let kills = run(
        &mut engine,
        |t, points| {
            if t == 60 {
                points.push(p(&process(10), "rss_bytes", 180.0 * MIB));
            }
            points.push(p(&process(11), "rss_bytes", 20.0 * MIB));
            points.push(p(&app(), "oom_kill_count", 1.0));
        },
        90,
    );
    assert_eq!(kills.len(), 1, "{kills:#?}");
    assert_eq!(kills[0].target, process(10));
    assert_eq!(kills[0].fired_at_ms, 60_000, "the time the counter moved");
    assert_eq!(kills[0].evidence("last_sample_at_ms"), Some(60_000.0));
}

#[test]
fn a_counter_kill_with_nobody_gone_is_the_cgroups_after_the_wait() {
    let mut engine = Engine::new(Config::default());
    let kills = run(
        &mut engine,
        |_, points| {
            points.push(p(&process(10), "rss_bytes", 180.0 * MIB));
            points.push(p(&process(11), "rss_bytes", 20.0 * MIB));
            points.push(p(&app(), "oom_kill_count", 2.0));
        },
        100,
    );
    assert_eq!(kills.len(), 1, "{kills:#?}");
    assert_eq!(kills[0].target, app());
    assert_eq!(kills[0].fired_at_ms, 60_000);
}

#[test]
fn the_kernel_log_names_the_victim_and_joins_the_counter() {
    let mut engine = Engine::new(Config::default());
    let mut kills = run(&mut engine, |_, _| {}, 55);
    engine.note_kernel_kill(KernelKill {
        pid: 11,
        comm: Some("small".to_string()),
        oom_cgroup: Some("/app".to_string()),
        task_cgroup: Some("/app".to_string()),
        rss_at_kill_bytes: Some(19.0 * MIB),
    });
    // The kernel killed the small one (say, oom_score_adj 1000).
    kills.extend(engine.observe(
        60_000,
        &[
            p(&process(10), "rss_bytes", 180.0 * MIB),
            p(&app(), "oom_kill_count", 1.0),
            p(&Entity::Host, "oom_kills", 4.0),
        ],
    ));
    for t in [65_000, 70_000, 75_000] {
        kills.extend(engine.observe(t, &[p(&app(), "oom_kill_count", 1.0)]));
    }
    let kills: Vec<&Finding> = kills.iter().filter(|f| f.id == OOM_KILL).collect();
    assert_eq!(kills.len(), 1, "{kills:#?}");
    assert_eq!(kills[0].target, process(11));
    assert_eq!(kills[0].evidence("pid"), Some(11.0));
    assert_eq!(kills[0].evidence("rss_at_kill_bytes"), Some(19.0 * MIB));
    assert_eq!(kills[0].evidence("oom_kill_count"), Some(1.0));
    assert!(kills[0].recommendation.contains("11 (small)"));
}

#[test]
fn a_host_kill_outside_any_cgroup_takes_the_largest_process_gone() {
    let mut engine = Engine::new(Config::default());
    let kills = run(
        &mut engine,
        |_, points| {
            points.retain(|p| p.entity != Entity::Host);
            points.push(p(&Entity::Host, "oom_kills", 4.0));
            points.push(p(&process(10), "rss_bytes", 180.0 * MIB));
            points.push(p(&process(11), "rss_bytes", 20.0 * MIB));
            points.push(p(&app(), "oom_kill_count", 0.0));
        },
        80,
    );
    assert_eq!(kills.len(), 1, "{kills:#?}");
    assert_eq!(kills[0].target, process(12));
}

#[test]
fn counters_seen_for_the_first_time_are_no_kill() {
    let mut engine = Engine::new(Config::default());
    let cg = Entity::Cgroup {
        path: "/old".to_string(),
    };
    let out = engine.observe(0, &[p(&cg, "oom_kill_count", 7.0)]);
    let out2 = engine.observe(5000, &[p(&cg, "oom_kill_count", 7.0)]);
    assert!(out.is_empty() && out2.is_empty());
}

/// The kill findings when the log names a kill in a cgroup nobody watches
/// (pid 999 in /someone-else) at 60 s, while every watched process lives
/// on, and the host's `oom_kills` counter reads 4 from `host_moves_at_ms`
/// (3 before), sampled every 5 s up to 90 s.
fn unwatched_kill_findings(host_moves_at_ms: i64) -> Vec<Finding> {
    let mut engine = Engine::new(Config::default());
    engine.read_kernel_log(true);
    let mut kills = run(&mut engine, |_, _| {}, 55);
    engine.note_kernel_kill(KernelKill {
        pid: 999,
        comm: Some("elsewhere".to_string()),
        oom_cgroup: Some("/someone-else".to_string()),
        task_cgroup: Some("/someone-else".to_string()),
        rss_at_kill_bytes: None,
    });
    for t in (60_000..=90_000).step_by(5_000) {
        let host_kills = if t >= host_moves_at_ms { 4.0 } else { 3.0 };
        kills.extend(engine.observe(
            t,
            &[
                p(&process(10), "rss_bytes", 180.0 * MIB),
                p(&process(11), "rss_bytes", 20.0 * MIB),
                p(&process(12), "rss_bytes", 500.0 * MIB),
                p(&app(), "oom_kill_count", 0.0),
                p(&Entity::Host, "oom_kills", host_kills),
            ],
        ));
    }
    kills.retain(|f| f.id == OOM_KILL);
    kills
}

#[test]
fn a_kill_the_log_names_in_an_unwatched_cgroup_is_no_finding_and_explains_the_host_counter() {
    let kills = unwatched_kill_findings(60_000);
    assert!(kills.is_empty(), "{kills:#?}");
}

#[test]
fn a_logged_kill_in_an_unwatched_cgroup_explains_a_host_counter_that_moves_a_cycle_later() {
    // The log is read before the host's counter moves (the counter is read
    // a cycle later on a loaded host): that move is the same kill, in a
    // cgroup nobody watches, so no finding, not one pinned on the host.
    let kills = unwatched_kill_findings(65_000);
    assert!(kills.is_empty(), "{kills:#?}");
}

#[test]
fn with_the_log_read_a_host_kill_nobody_names_is_the_hosts_not_a_guess() {
    let mut engine = Engine::new(Config::default());
    engine.read_kernel_log(true);
    let kills = run(
        &mut engine,
        |_, points| {
            points.retain(|p| p.entity != Entity::Host);
            points.push(p(&Entity::Host, "oom_kills", 4.0));
            points.push(p(&process(10), "rss_bytes", 180.0 * MIB));
            points.push(p(&process(11), "rss_bytes", 20.0 * MIB));
            points.push(p(&app(), "oom_kill_count", 0.0));
        },
        90,
    );
    assert_eq!(kills.len(), 1, "{kills:#?}");
    assert_eq!(kills[0].target, Entity::Host);
    assert_eq!(kills[0].fired_at_ms, 60_000);
}

#[test]
fn a_victim_is_reported_once_whatever_reports_it_later() {
    let mut engine = Engine::new(Config::default());
    let mut kills = run(
        &mut engine,
        |_, points| {
            points.retain(|p| p.entity != Entity::Host);
            points.push(p(&Entity::Host, "oom_kills", 4.0));
            points.push(p(&process(11), "rss_bytes", 20.0 * MIB));
            points.push(p(&process(12), "rss_bytes", 500.0 * MIB));
            points.push(p(&app(), "oom_kill_count", 1.0));
        },
        70,
    );
    // The log line of the same kill, read late.
    engine.note_kernel_kill(KernelKill {
        pid: 10,
        oom_cgroup: Some("/app".to_string()),
        ..KernelKill::default()
    });
    kills.extend(engine.observe(
        75_000,
        &[
            p(&process(11), "rss_bytes", 20.0 * MIB),
            p(&app(), "oom_kill_count", 1.0),
            p(&Entity::Host, "oom_kills", 4.0),
        ],
    ));
    let kills: Vec<&Finding> = kills.iter().filter(|f| f.id == OOM_KILL).collect();
    assert_eq!(kills.len(), 1, "{kills:#?}");
    assert_eq!(kills[0].target, process(10));
}
