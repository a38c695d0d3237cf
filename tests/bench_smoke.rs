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
/// scenario 6 as `6/<layer>`.
fn results(stdout: &str) -> HashMap<(String, String), HashMap<String, String>> {
    let mut out = HashMap::new();
    for line in stdout.lines().filter_map(|l| l.strip_prefix("RESULT ")) {
        let fields: HashMap<String, String> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let scenario = match fields.get("layer") {
            Some(layer) => format!("{}/{layer}", fields["scenario"]),
            None => fields["scenario"].clone(),
        };
        out.insert((fields["target"].clone(), scenario), fields);
    }
    out
}

#[test]
fn a_tiny_bench_run_completes_with_zero_loss_on_whisper_bare_and_uvicorn() {
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--whisper", env!("CARGO_BIN_EXE_whisper")])
        .args(["--compat", concat!(env!("CARGO_MANIFEST_DIR"), "/compat")])
        .args([
            "--target",
            "whisper,bare,uvicorn",
            "--scenario",
            "1,2,3,4,5,6,7",
            "--hostile-secs",
            "1",
        ])
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
        .output()
        .expect("run the bench binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed:\n{stdout}\n{stderr}");

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
    assert_eq!(checked.len(), 4 + 3 + 8, "{checked:?}");
}
