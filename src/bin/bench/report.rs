//! The results: one table (a row per measurement, a column per target), the ratios against the
//! issue's targets, and one `RESULT key=value …` line per measurement on stdout for scripts and
//! the CI smoke test. Everything human-oriented goes to stdout after the run; progress went to
//! stderr while it ran.

mod scale;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::hostile::{Abuse, Measured};
use crate::load::StepResult;
use crate::scale_out::LayerCounters;
use crate::{Layer, Sizes, Target};

pub struct Report {
    sizes: Sizes,
    /// (row, target) → cell text; rows sort by their leading scenario number.
    cells: BTreeMap<(String, Target), String>,
    rows: Vec<String>,
    targets: BTreeSet<Target>,
    /// (target, key) → number, for the ratios.
    values: BTreeMap<(Target, &'static str), f64>,
    results: Vec<String>,
    failures: Vec<String>,
    /// Printed under the table (e.g. why a scenario ran smaller than asked).
    notes: Vec<String>,
}

impl Report {
    pub fn new(sizes: Sizes) -> Report {
        Report {
            sizes,
            cells: BTreeMap::new(),
            rows: Vec::new(),
            targets: BTreeSet::new(),
            values: BTreeMap::new(),
            results: Vec::new(),
            failures: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn put(&mut self, row: String, target: Target, text: String) {
        if !self.rows.contains(&row) {
            self.rows.push(row.clone());
        }
        self.targets.insert(target);
        self.cells.insert((row, target), text);
    }

    fn result(&mut self, target: Target, scenario: u8, fields: &str) {
        self.results.push(format!(
            "RESULT target={} scenario={scenario} {fields}",
            target.name()
        ));
    }

    fn scenario_row(&self, scenario: u8) -> String {
        let s = &self.sizes;
        match scenario {
            1 => format!(
                "1 fan-out, {} clients/1 room: zero-loss deliveries/s",
                s.clients
            ),
            2 => format!(
                "2 {} clients/{} rooms: zero-loss deliveries/s",
                s.many_clients, s.rooms
            ),
            3 => format!("3 latency @{}/s: p50 / p99 / p99.9 / max", s.latency_rate),
            4 => "4 connect+join: sockets, seconds, RSS/socket; RSS before → open → all closed"
                .to_string(),
            5 => format!("5 chat p99 during {} logins (logins took)", s.logins),
            7 => format!(
                "7 hostile room, {} members @{}/s: victims' p99 clean → hostile, loss, peak RSS",
                s.clients, s.latency_rate
            ),
            8 => format!(
                "8 members on one process ({} asked, {} rooms): joins/s, RSS/member; p99 @{}/s one room → all; idle CPU; leave notices",
                s.members, s.member_rooms, s.latency_rate
            ),
            9 => format!(
                "9 one room of {}: zero-loss deliveries/s, last-member p99; another room's p99",
                s.big_room
            ),
            _ => self.layer_row(Layer::Own),
        }
    }

    fn layer_row(&self, layer: Layer) -> String {
        let format = match layer {
            Layer::Own => "own format",
            Layer::Pubsub => "channels_redis pubsub",
            Layer::Core => "channels_redis core",
        };
        format!(
            "6 two Whisper processes over Redis ({format}), {} clients",
            self.sizes.clients
        )
    }

    /// Scenario 6 on one channel-layer format: the best zero-loss step, and what the two
    /// processes counted as lost on the way (`/healthz`).
    pub fn two_processes(&mut self, layer: Layer, best: Option<StepResult>, c: &LayerCounters) {
        let row = self.layer_row(layer);
        let target = Target::Whisper;
        let peak = c
            .peak_queue
            .map(|p| format!(", peak queue {p}"))
            .unwrap_or_default();
        let counted = format!(
            "publish_failures={} over_capacity={}{}",
            c.publish_failures,
            c.over_capacity,
            c.peak_queue
                .map(|p| format!(" peak_queue={p}"))
                .unwrap_or_default()
        );
        let layer_field = format!("layer={}", layer.name());
        match best {
            Some(r) => {
                let losses = if c.publish_failures + c.over_capacity == 0 {
                    "zero loss".to_string()
                } else {
                    format!(
                        "LOST {} unpublished + {} over capacity",
                        c.publish_failures, c.over_capacity
                    )
                };
                let text = format!(
                    "{:.0} (p99 {:.1} ms), {losses}{peak}",
                    r.delivered_per_sec,
                    r.p(0.99)
                );
                self.put(row, target, text);
                let key = match layer {
                    Layer::Own => "s6",
                    Layer::Pubsub => "s6-pubsub",
                    Layer::Core => "s6-core",
                };
                self.values.insert((target, key), r.delivered_per_sec);
                let fields = format!(
                    "{layer_field} deliveries_per_sec={:.0} lost={} expected={} p99_ms={:.3} {counted}",
                    r.delivered_per_sec,
                    r.lost,
                    r.expected,
                    r.p(0.99)
                );
                self.result(target, 6, &fields);
            }
            None => {
                let text = format!("none held at {}/s{peak}", self.sizes.start_rate);
                self.put(row, target, text);
                self.result(
                    target,
                    6,
                    &format!("{layer_field} deliveries_per_sec=0 status=none-held {counted}"),
                );
            }
        }
    }

    /// A free-text cell ("not run: …").
    pub fn cell(&mut self, target: Target, scenario: u8, text: &str) {
        let row = self.scenario_row(scenario);
        self.put(row, target, text.to_string());
        self.result(target, scenario, "status=not-run");
    }

    pub fn failed(&mut self, target: Target, error: &str) {
        self.failures.push(format!("{}: {error}", target.name()));
        self.put(
            "error".to_string(),
            target,
            error.chars().take(60).collect(),
        );
    }

    pub fn has_failures(&self) -> bool {
        !self.failures.is_empty()
    }

    pub fn throughput(&mut self, target: Target, scenario: u8, best: Option<StepResult>) {
        let row = self.scenario_row(scenario);
        match best {
            Some(r) => {
                let text = format!("{:.0} (p99 {:.1} ms)", r.delivered_per_sec, r.p(0.99));
                self.put(row, target, text);
                let key = if scenario == 1 { "s1" } else { "s2" };
                self.values.insert((target, key), r.delivered_per_sec);
                let fields = format!(
                    "deliveries_per_sec={:.0} lost={} expected={} p99_ms={:.3}",
                    r.delivered_per_sec,
                    r.lost,
                    r.expected,
                    r.p(0.99)
                );
                self.result(target, scenario, &fields);
            }
            None => {
                let text = format!("none held at {}/s", self.sizes.start_rate);
                self.put(row, target, text);
                self.result(target, scenario, "deliveries_per_sec=0 status=none-held");
            }
        }
    }

    pub fn latency(&mut self, target: Target, scenario: u8, r: &StepResult) {
        let row = self.scenario_row(scenario);
        let loss = if r.lost == 0 {
            String::new()
        } else {
            format!(", LOST {}", r.lost)
        };
        let text = format!(
            "{:.2} / {:.2} / {:.1} / {:.1} ms{loss}",
            r.p(0.5),
            r.p(0.99),
            r.p(0.999),
            r.max_ms()
        );
        self.put(row, target, text);
        self.values.insert((target, "s3_p99"), r.p(0.99));
        let fields = format!(
            "p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} lost={} expected={} closed={}",
            r.p(0.5),
            r.p(0.99),
            r.p(0.999),
            r.max_ms(),
            r.lost,
            r.expected,
            r.closed
        );
        self.result(target, scenario, &fields);
    }

    /// Scenario 4; `rss` is the server's KiB before, with every socket open, and after they
    /// all closed.
    pub fn connect(
        &mut self,
        target: Target,
        sockets: usize,
        took: Duration,
        kib_per_socket: f64,
        rss: [u64; 3],
    ) {
        let row = self.scenario_row(4);
        let secs = took.as_secs_f64();
        let [before, open, closed] = rss;
        let text = format!(
            "{sockets} in {secs:.2} s ({:.0}/s), {kib_per_socket:.1} KiB; RSS {} → {} → {} MiB",
            sockets as f64 / secs,
            before / 1024,
            open / 1024,
            closed / 1024
        );
        self.put(row, target, text);
        self.values.insert((target, "s4_secs"), secs);
        self.values.insert((target, "s4_kib"), kib_per_socket);
        self.values.insert((target, "s4_sockets"), sockets as f64);
        let fields = format!(
            "sockets={sockets} seconds={secs:.3} rss_kib_per_socket={kib_per_socket:.2} \
             rss_kib_before={before} rss_kib_open={open} rss_kib_closed={closed}"
        );
        self.result(target, 4, &fields);
    }

    pub fn flood(&mut self, target: Target, r: &StepResult, took: Duration, failures: usize) {
        let row = self.scenario_row(5);
        let failed = if failures > 0 {
            format!(", {failures} FAILED")
        } else {
            String::new()
        };
        let loss = if r.lost == 0 {
            String::new()
        } else {
            format!(", LOST {}", r.lost)
        };
        let text = format!(
            "{:.2} ms ({:.1} s{failed}{loss})",
            r.p(0.99),
            took.as_secs_f64()
        );
        self.put(row, target, text);
        self.values.insert((target, "s5_p99"), r.p(0.99));
        let fields = format!(
            "p99_ms={:.3} max_ms={:.3} login_seconds={:.3} login_failures={failures} lost={} expected={}",
            r.p(0.99),
            r.max_ms(),
            took.as_secs_f64(),
            r.lost,
            r.expected
        );
        self.result(target, 5, &fields);
    }

    /// Scenario 7: the victims' clean and hostile runs, and what the abusers saw.
    pub fn hostile(&mut self, clean: &Measured, hostile: &Measured, abuse: &Abuse) {
        let target = Target::Whisper;
        let (c, h) = (&clean.victims, &hostile.victims);
        let lost = c.lost + h.lost;
        let losses = if lost == 0 && c.closed + h.closed == 0 {
            "0 lost".to_string()
        } else {
            format!("LOST {lost}, {} closed", c.closed + h.closed)
        };
        let text = format!(
            "{:.2} → {:.2} ms, {losses}, {} → {} MiB",
            c.p(0.99),
            h.p(0.99),
            clean.peak_rss_kib / 1024,
            hostile.peak_rss_kib / 1024
        );
        self.put(self.scenario_row(7), target, text);
        self.values
            .insert((target, "s7_ratio"), h.p(0.99) / c.p(0.99).max(0.001));
        self.values.insert((target, "s7_lost"), lost as f64);
        let fields = format!(
            "clean_p99_ms={:.3} hostile_p99_ms={:.3} clean_max_ms={:.3} hostile_max_ms={:.3} \
             lost={lost} expected={} closed={} clean_peak_rss_kib={} hostile_peak_rss_kib={} \
             flood_frame_in_bytes={} flood_frame_out_bytes={} flood_sent={} flood_delivered={} \
             flood_refused={} stopped_reader_dropped_s={} \
             flooder={:?} stopped_reader={:?}",
            c.p(0.99),
            h.p(0.99),
            c.max_ms(),
            h.max_ms(),
            c.expected + h.expected,
            c.closed + h.closed,
            clean.peak_rss_kib,
            hostile.peak_rss_kib,
            abuse.flood_in_bytes,
            abuse.flood_out_bytes,
            abuse.flood_sent,
            abuse.flood_delivered,
            abuse.flood_refused,
            abuse
                .dropped_after
                .map_or("none".to_string(), |s| format!("{s:.1}")),
            abuse.flooder,
            abuse.stopped_reader
        );
        self.result(target, 7, &fields);
    }

    fn value(&self, target: Target, key: &'static str) -> Option<f64> {
        self.values.get(&(target, key)).copied()
    }

    /// The best Python configuration for a throughput key.
    fn best_python(&self, key: &'static str) -> Option<(Target, f64)> {
        [Target::Uvicorn, Target::Daphne]
            .into_iter()
            .filter_map(|t| self.value(t, key).map(|v| (t, v)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn target_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let w = Target::Whisper;
        for key in ["s1", "s2"] {
            if let (Some(ws), Some((py, pv))) = (self.value(w, key), self.best_python(key)) {
                let ratio = ws / pv.max(1.0);
                let goal = if key == "s1" {
                    " (target ≥ 50×)"
                } else {
                    ""
                };
                let status = if key == "s1" {
                    verdict(ratio >= 50.0)
                } else {
                    ""
                };
                lines.push(format!(
                    "{key}: whisper / best Python ({}) = {ratio:.1}×{goal} {status}",
                    py.name()
                ));
            }
            if let (Some(ws), Some(bare)) = (self.value(w, key), self.value(Target::Bare, key)) {
                let share = 100.0 * ws / bare.max(1.0);
                let goal = if key == "s1" {
                    " (target ≥ 70 %)"
                } else {
                    ""
                };
                let status = if key == "s1" {
                    verdict(share >= 70.0)
                } else {
                    ""
                };
                lines.push(format!(
                    "{key}: whisper / bare = {share:.0} %{goal} {status}"
                ));
            }
        }
        if let (Some(ws), Some(bare)) =
            (self.value(w, "s3_p99"), self.value(Target::Bare, "s3_p99"))
        {
            let ratio = ws / bare.max(0.001);
            lines.push(format!(
                "s3: whisper p99 / bare p99 = {ratio:.2}× (target ≤ 1.5×) {}",
                verdict(ratio <= 1.5)
            ));
        }
        if let (Some(secs), Some(kib), Some(n)) = (
            self.value(w, "s4_secs"),
            self.value(w, "s4_kib"),
            self.value(w, "s4_sockets"),
        ) {
            let full = n >= 10_000.0;
            let scale = if full {
                ""
            } else {
                " (fewer than 10,000 sockets: indicative only)"
            };
            lines.push(format!("s4: {n:.0} sockets in {secs:.2} s (target ≤ 2 s) {}; {kib:.1} KiB/socket (target ≤ 8 KiB) {}{scale}", verdict(secs <= 2.0), verdict(kib <= 8.0)));
        }
        if let Some(p99) = self.value(w, "s5_p99") {
            lines.push(format!(
                "s5: whisper chat p99 during the login flood = {p99:.2} ms (target ≤ 5 ms) {}",
                verdict(p99 <= 5.0)
            ));
        }
        if let (Some(ratio), Some(lost)) = (self.value(w, "s7_ratio"), self.value(w, "s7_lost")) {
            lines.push(format!(
                "s7: victims' p99 hostile / clean = {ratio:.2}× (target ≤ 1.5×) {}; lost {lost:.0} (target 0) {}",
                verdict(ratio <= 1.5),
                verdict(lost == 0.0)
            ));
        }
        for (layer, key) in [
            ("own format", "s6"),
            ("pubsub", "s6-pubsub"),
            ("core", "s6-core"),
        ] {
            let Some(agg) = self.value(w, key) else {
                continue;
            };
            match self.value(w, "s1") {
                Some(single) => lines.push(format!(
                    "s6 ({layer}): two processes {agg:.0}/s vs one {single:.0}/s = {:.2}× (target ≥ 1×, zero loss) {}",
                    agg / single.max(1.0),
                    verdict(agg >= single)
                )),
                None => lines.push(format!(
                    "s6 ({layer}): two processes {agg:.0}/s at zero loss (run scenario 1 to compare)"
                )),
            }
        }
        self.scale_lines(&mut lines);
        lines
    }

    pub fn print(&self) {
        let targets: Vec<Target> = self.targets.iter().copied().collect();
        let mut rows = self.rows.clone();
        rows.sort();
        let header: Vec<String> = std::iter::once("scenario".to_string())
            .chain(targets.iter().map(|t| t.name().to_string()))
            .collect();
        let mut table = vec![header];
        for row in &rows {
            let mut line = vec![row.clone()];
            for t in &targets {
                line.push(
                    self.cells
                        .get(&(row.clone(), *t))
                        .cloned()
                        .unwrap_or_else(|| "—".into()),
                );
            }
            table.push(line);
        }
        println!();
        for (i, line) in table.iter().enumerate() {
            println!("| {} |", line.join(" | "));
            if i == 0 {
                println!("|{}", "---|".repeat(line.len()));
            }
        }
        println!();
        for line in self.target_lines() {
            println!("{line}");
        }
        for note in &self.notes {
            println!("NOTE {note}");
        }
        for failure in &self.failures {
            println!("FAILED {failure}");
        }
        for result in &self.results {
            println!("{result}");
        }
    }
}
