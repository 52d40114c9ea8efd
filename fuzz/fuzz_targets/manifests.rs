//! Whatever bytes a pull request holds, the offline path (load, validate, plan, render) answers
//! without a panic, a hang or unbounded memory.
#![no_main]

use catalyst_core::manifest;
use catalyst_core::planner::{self, Overhead, PlanInput, SearchBudget, whatif};
use catalyst_core::pool::HostPool;
use libfuzzer_sys::fuzz_target;

/// A small budget: the search is exercised, and one input stays far below libFuzzer's timeout.
const BUDGET: SearchBudget = SearchBudget { nodes: 20_000, time: std::time::Duration::from_millis(100) };

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (manifests, errors) = manifest::parse("fuzz.yaml", text);
    if !errors.is_empty() {
        return;
    }
    let input = PlanInput::from_manifests(&manifests, &Overhead::default(), &HostPool::default());
    let plan = planner::plan_within(&input, BUDGET);
    let more = manifests.hosts.first().and_then(|h| whatif::hosts_needed(&input, h.metadata.name.as_deref()?, BUDGET));
    let loss = whatif::host_loss(&input, &plan, BUDGET);
    let _ = planner::report::table(&plan, more.as_ref(), Some(&loss));
    let _ = planner::picture::html(&plan);
    let _ = catalyst_core::render::offline::render_plan(&manifests, &plan);
});
