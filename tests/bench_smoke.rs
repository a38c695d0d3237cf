//! CI smoke of the load generator (`src/bin/bench`, issue 5): every scenario with tiny numbers
//! against Whisper, the bare reference server and the Python app under uvicorn, so the bench
//! cannot rot. It asserts that the run completes and that every measured step delivered every
//! message (scenario 6 on all three channel-layer formats, with both processes' loss counters
//! at zero) — never a speed (the p99 limit is lifted to 10 s). It needs Redis on 127.0.0.1:6379
//! and compat/.venv (`compat/bootstrap.sh 5.2`, run by `./manage test`); without them the bench
//! exits non-zero and this test fails.

use std::collections::HashMap;
use std::process::Command;

/// The `RESULT target=… scenario=… key=value …` lines of a run, keyed by (target, scenario),
/// scenario 6 as `6/<layer>`, the instruction counts as `instructions/<path>`.
fn results(stdout: &str) -> HashMap<(String, String), HashMap<String, String>> {
    let mut out = HashMap::new();
    for line in stdout.lines().filter_map(|l| l.strip_prefix("RESULT ")) {
        let fields: HashMap<String, String> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let scenario = match fields.get("layer").or(fields.get("path")) {
            Some(sub) => format!("{}/{sub}", fields["scenario"]),
            None => fields["scenario"].clone(),
        };
        out.insert((fields["target"].clone(), scenario), fields);
    }
    out
}

/// Runs the bench binary on the test build's Whisper with `configure`'s flags; fails unless
/// it exits 0. Returns its stdout and stderr.
fn run_bench(configure: impl FnOnce(&mut Command) -> &mut Command) -> (String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bench"));
    command
        .args(["--whisper", env!("CARGO_BIN_EXE_whisper")])
        .args(["--compat", concat!(env!("CARGO_MANIFEST_DIR"), "/compat")]);
    let output = configure(&mut command)
        .output()
        .expect("run the bench binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "bench failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

#[test]
fn a_tiny_bench_run_completes_with_zero_loss_on_whisper_bare_and_uvicorn() {
    let (stdout, stderr) = run_bench(|c| {
        c.args([
            "--target",
            "whisper,bare,uvicorn",
            "--scenario",
            "1,2,3,4,5,6,7,8,9",
            "--hostile-secs",
            "1",
        ])
        .args(["--members", "40", "--member-rooms", "4", "--idle-secs", "1"])
        .args(["--big-room", "12"])
        .args(["--users", "1", "--clients", "6", "--senders", "2"])
        .args(["--many-clients", "8", "--rooms", "2"])
        .args(["--sockets", "20", "--python-sockets", "10"])
        .args([
            "--latency-rate",
            "60",
            "--latency-secs",
            "1",
            "--logins",
            "2",
        ])
        .args([
            "--start-rate",
            "60",
            "--max-rate",
            "120",
            "--step-secs",
            "0.5",
        ])
        .args(["--p99-limit-ms", "10000", "--python-connect-limit", "60"])
    });

    let results = results(&stdout);
    let get = |target: &str, scenario: &str| {
        results
            .get(&(target.to_string(), scenario.to_string()))
            .unwrap_or_else(|| {
                panic!("no RESULT for {target} scenario {scenario}:\n{stdout}\n{stderr}")
            })
    };
    let mut checked = Vec::new();
    for target in ["whisper", "bare", "uvicorn+pubsub"] {
        // 8: every member joined, no loss, every leave notice arrived; 9: the big room's best
        // step lost nothing.
        let members = get(target, "8");
        assert_eq!(members["lost"], "0", "{target} scenario 8: {members:?}");
        assert_eq!(members["members"], "40", "{target} scenario 8: {members:?}");
        assert_eq!(
            members["leaves_received"], members["leaves_expected"],
            "{target} scenario 8: {members:?}"
        );
        assert_ne!(members["leaves_expected"], "0", "{members:?}");
        let big = get(target, "9");
        assert_eq!(big["lost"], "0", "{target} scenario 9: {big:?}");
        assert_ne!(
            big["deliveries_per_sec"], "0",
            "{target} scenario 9: {big:?}"
        );
        checked.push(format!("{target}/8+9"));
        let mut scenarios = vec!["1", "2", "3", "4"];
        if target != "bare" {
            scenarios.push("5");
        }
        if target == "whisper" {
            scenarios.extend(["6/own", "6/pubsub", "6/core", "7"]);
        }
        for scenario in scenarios {
            let r = get(target, scenario);
            if scenario == "4" {
                assert!(
                    r.contains_key("sockets"),
                    "{target} scenario 4 did not connect: {r:?}"
                );
                continue;
            }
            assert_eq!(
                r.get("lost").map(String::as_str),
                Some("0"),
                "{target} scenario {scenario}: {r:?}"
            );
            let expected: u64 = r["expected"].parse().unwrap();
            assert!(
                expected > 0,
                "{target} scenario {scenario} sent nothing: {r:?}"
            );
            if scenario == "5" {
                assert_eq!(r["login_failures"], "0", "{target}: {r:?}");
            }
            if scenario == "7" {
                assert_eq!(r["closed"], "0", "victims closed: {r:?}");
                assert_ne!(r["flood_sent"], "0", "the flooder sent nothing: {r:?}");
            }
            if scenario.starts_with("6/") {
                assert_eq!(r["publish_failures"], "0", "{target} {scenario}: {r:?}");
                assert_eq!(r["over_capacity"], "0", "{target} {scenario}: {r:?}");
            }
            checked.push(format!("{target}/{scenario}"));
        }
    }
    assert_eq!(checked.len(), 4 + 3 + 8 + 3, "{checked:?}");
}

/// `bench --instructions` (issue 12): callgrind's instructions per delivery, tiny, on the
/// local, big-room and one Redis path. Asserts the counts exist and nothing was lost, never a
/// ratio. Needs valgrind (on every machine of this kind) and Redis.
#[test]
fn the_instruction_count_mode_counts_a_tiny_run() {
    let (stdout, stderr) = run_bench(|c| {
        c.args(["--instructions", "--quick", "--users", "1"])
            .args(["--clients", "4", "--senders", "2", "--big-room", "6"])
            .args(["--messages", "4", "--layer", "pubsub", "--top", "5"])
    });
    let results = results(&stdout);
    for path in ["local", "big-room", "pubsub"] {
        let r = results
            .get(&("whisper".to_string(), format!("instructions/{path}")))
            .unwrap_or_else(|| panic!("no RESULT for path {path}:\n{stdout}\n{stderr}"));
        let ir: f64 = r["ir_per_delivery"].parse().unwrap();
        assert!(ir > 0.0, "{path}: {r:?}");
        assert_ne!(r["deliveries"], "0", "{path}: {r:?}");
    }
    assert!(stdout.contains("top 5 functions by self cost"), "{stdout}");
}
