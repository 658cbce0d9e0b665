//! The text form of a [`Report`].

use super::{Report, State};

pub fn text(r: &Report) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "picolet {} ({}, {})\n",
        r.version, r.target, r.profile
    ));
    o.push_str(&format!(
        "board:   {} — {} (from {})\n",
        r.board.id, r.board.name, r.board.detected_from
    ));
    o.push_str(&format!(
        "kernel:  {} ({})\n",
        r.kernel.as_deref().unwrap_or("unknown"),
        r.arch
    ));
    let cg = &r.cgroup;
    o.push_str(&format!("cgroup:  {} hierarchy", cg.hierarchy));
    if let Some(m) = &cg.cgroup2_mount {
        o.push_str(&format!(", cgroup2 at {}", m.display()));
    }
    if let Some(c) = &cg.checked {
        o.push_str(&format!(
            "; {} offers: {}",
            c.display(),
            if cg.controllers.is_empty() {
                "(none)".to_string()
            } else {
                cg.controllers.join(" ")
            }
        ));
    }
    o.push('\n');
    if !cg.v1.is_empty() {
        let v1: Vec<String> = cg
            .v1
            .iter()
            .map(|(c, p)| format!("{c} ({})", p.display()))
            .collect();
        o.push_str(&format!("         bound to cgroup v1: {}\n", v1.join(", ")));
    }
    o.push('\n');
    let width = r.items.iter().map(|i| i.name.len()).max().unwrap_or(0);
    // (fix, first item that gave it): a repeated fix is named, not repeated.
    let mut fixes: Vec<(&str, &str)> = Vec::new();
    for i in &r.items {
        let mark = match (i.state, i.required) {
            (State::Ok, _) => "ok",
            (State::Missing, true) => "MISSING",
            (State::Missing, false) => "missing",
            (State::Warn, _) => "warn",
            (State::Unknown, _) => "unknown",
        };
        let opt = if i.required { "" } else { " (optional)" };
        o.push_str(&format!(
            "  {mark:<8} {:<width$}  {}{opt}\n",
            i.name, i.detail
        ));
        if let Some(fix) = &i.fix {
            let shown = match fixes.iter().find(|(f, _)| *f == fix.as_str()) {
                Some((_, first)) => format!("the same as for {first}"),
                None => {
                    fixes.push((fix, &i.name));
                    fix.clone()
                }
            };
            o.push_str(&format!("  {:<8} {:<width$}  fix: {shown}\n", "", ""));
        }
    }
    let failed: Vec<&str> = r.failures().map(|i| i.name.as_str()).collect();
    o.push('\n');
    if failed.is_empty() {
        o.push_str("result: PASS — every required item is present\n");
    } else {
        o.push_str(&format!(
            "result: FAIL — {} required item(s) missing: {}\n",
            failed.len(),
            failed.join(", ")
        ));
    }
    o
}
