//! Scenarios 8 and 9 in the table: many members on one process, and one big room.

use super::Report;
use crate::Target;
use crate::big_room::BigRoom;
use crate::members::Members;

impl Report {
    pub fn members(&mut self, target: Target, m: &Members) {
        let row = self.scenario_row(8);
        let secs = m.joined_in.as_secs_f64();
        let rate = m.members as f64 / secs.max(1e-3);
        let ratio = m.spread.p(0.99) / m.yardstick.p(0.99).max(0.001);
        let leaves = match m.leaves_in {
            Some(d) => format!("{:.2} s", d.as_secs_f64()),
            None => format!("{} of {} in 120 s", m.leaves_received, m.leaves_expected),
        };
        let lost = m.spread.lost + m.yardstick.lost;
        let text = format!(
            "{} in {} rooms: {rate:.0} joins/s, {:.2} KiB/member; p99 {:.2} → {:.2} ms ({ratio:.2}×){}; idle {:.2} % (max {:.0} %); leaves after {} dropped: {leaves}",
            m.members,
            m.rooms,
            m.kib_per_member,
            m.yardstick.p(0.99),
            m.spread.p(0.99),
            if lost == 0 {
                String::new()
            } else {
                format!(", LOST {lost}")
            },
            m.idle_avg,
            m.idle_max,
            m.dropped
        );
        self.put(row, target, text);
        for (key, value) in [
            ("s8_members", m.members as f64),
            ("s8_kib", m.kib_per_member),
            ("s8_ratio", ratio),
            ("s8_idle", m.idle_avg),
            ("s8_rate", rate),
            ("s8_lost", lost as f64),
        ] {
            self.values.insert((target, key), value);
        }
        if let Some(d) = m.leaves_in {
            self.values.insert((target, "s8_leaves"), d.as_secs_f64());
        }
        let fields = format!(
            "members={} rooms={} joins_per_sec={rate:.0} rss_kib_per_member={:.3} \
             yardstick_p99_ms={:.3} spread_p99_ms={:.3} lost={lost} idle_cpu_pct={:.3} \
             idle_cpu_max_pct={:.1} idle_secs={:.0} dropped={} leaves_expected={} \
             leaves_received={} leaves_secs={}{}",
            m.members,
            m.rooms,
            m.kib_per_member,
            m.yardstick.p(0.99),
            m.spread.p(0.99),
            m.idle_avg,
            m.idle_max,
            m.idle_secs,
            m.dropped,
            m.leaves_expected,
            m.leaves_received,
            m.leaves_in
                .map_or("none".to_string(), |d| format!("{:.3}", d.as_secs_f64())),
            if m.shrunk.is_some() {
                " shrunk=fd-limit"
            } else {
                ""
            }
        );
        self.result(target, 8, &fields);
        if let Some(why) = &m.shrunk {
            self.notes.push(format!("s8 ({}): {why}", target.name()));
        }
    }

    pub fn big_room(&mut self, target: Target, b: &BigRoom) {
        let row = self.scenario_row(9);
        let beside = if b.beside.is_empty() {
            "not run".to_string()
        } else {
            b.beside
                .iter()
                .map(|x| format!("{:.2} ms @{:.0}/s", x.small.p(0.99), x.big_rate))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = match &b.best {
            Some(best) => {
                let last = best
                    .last
                    .as_ref()
                    .map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1000.0);
                self.values.insert((target, "s9"), best.delivered_per_sec);
                self.values.insert((target, "s9_last"), last);
                format!(
                    "{:.0}/s, last member p99 {last:.1} ms; small room p99 {:.2} ms alone → {beside} beside",
                    best.delivered_per_sec,
                    b.small_alone.p(0.99)
                )
            }
            None => format!(
                "none held; small room p99 {:.2} ms alone",
                b.small_alone.p(0.99)
            ),
        };
        self.put(row, target, text);
        if let Some(x) = b.beside.first() {
            self.values
                .insert((target, "s9_small_alone"), b.small_alone.p(0.99));
            self.values
                .insert((target, "s9_small_beside"), x.small.p(0.99));
        }
        let best = b.best.as_ref();
        let fields = format!(
            "members={} deliveries_per_sec={:.0} lost={} last_p99_ms={:.3} small_members={} \
             small_alone_p99_ms={:.3}{}",
            b.members,
            best.map_or(0.0, |r| r.delivered_per_sec),
            best.map_or(0, |r| r.lost),
            best.and_then(|r| r.last.as_ref())
                .map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1000.0),
            b.small_members,
            b.small_alone.p(0.99),
            b.beside
                .iter()
                .enumerate()
                .map(|(i, x)| format!(
                    " beside{i}_big_rate={:.0} beside{i}_small_p99_ms={:.3} beside{i}_lost={}",
                    x.big_rate,
                    x.small.p(0.99),
                    x.big.lost + x.small.lost
                ))
                .collect::<String>(),
        );
        self.result(target, 9, &fields);
    }

    /// Scenario 8 and 9's lines against the goals.
    pub(super) fn scale_lines(&self, lines: &mut Vec<String>) {
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let w = Target::Whisper;
        if let (Some(n), Some(kib)) = (self.value(w, "s8_members"), self.value(w, "s8_kib")) {
            let bare = self
                .value(Target::Bare, "s8_kib")
                .map(|b| format!(", bare {b:.2} KiB"))
                .unwrap_or_default();
            let scale = if n >= 100_000.0 {
                String::new()
            } else {
                format!(" ({n:.0} members, not 100,000: see the note)")
            };
            lines.push(format!(
                "s8: {kib:.2} KiB/member (target ≤ 6 KiB) {}{bare}{scale}",
                verdict(kib <= 6.0)
            ));
        }
        if let Some(ratio) = self.value(w, "s8_ratio") {
            lines.push(format!(
                "s8: p99 spread over every room / one room of 100 = {ratio:.2}× (target ≤ 1.5×) {}",
                verdict(ratio <= 1.5)
            ));
        }
        if let Some(idle) = self.value(w, "s8_idle") {
            lines.push(format!(
                "s8: idle CPU {idle:.2} % of a core (target < 2 % at 100,000 members) {}",
                verdict(idle < 2.0)
            ));
        }
        if let (Some(ws), Some(bare)) = (self.value(w, "s9"), self.value(Target::Bare, "s9")) {
            let share = 100.0 * ws / bare.max(1.0);
            lines.push(format!(
                "s9: one big room, whisper / bare = {share:.0} % (target ≥ 70 %) {}",
                verdict(share >= 70.0)
            ));
        }
        if let (Some(alone), Some(beside)) = (
            self.value(w, "s9_small_alone"),
            self.value(w, "s9_small_beside"),
        ) {
            lines.push(format!(
                "s9: another room's p99 {alone:.2} ms alone → {beside:.2} ms beside the big room at half its zero-loss rate"
            ));
        }
    }
}
