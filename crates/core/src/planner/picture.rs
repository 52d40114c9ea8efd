//! The plan as a picture, for a reviewer who would rather look than read tables: each host a
//! bar of its cores and one of its memory, the VMs inside it with the ServiceGroups inside
//! each VM, what is free, and in red what does not fit and by how much.
//!
//! Plain SVG built as text (no drawing crate): boxes, lines and labels. Every element that
//! stands for an object carries `data-kind` and `data-name`, so a test can find what it shows.

use super::{Plan, Res, Verdict};
use crate::key::ObjectKey;
use crate::quantity::{HumanBytes, HumanCores};
use std::collections::HashMap;
use std::fmt::Write;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 180.0;
const ROW: f64 = 74.0;
const CPU_BAR: f64 = 30.0;
const MEMORY_BAR: f64 = 12.0;
pub(crate) const FREE: &str = "#e8ecef";
pub(crate) const VM_COLOURS: [&str; 6] = ["#4e79a7", "#59a14f", "#9c755f", "#76b7b2", "#edc948", "#b07aa1"];
const GROUP: &str = "rgba(255,255,255,0.35)";
pub(crate) const MISFIT: &str = "#d62728";

/// Text safe inside SVG and HTML.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG document being written (also `kubectl catalyst status`'s core maps).
pub(crate) struct Canvas {
    pub(crate) out: String,
}

impl Canvas {
    pub(crate) fn rect(
        &mut self,
        (x, y, w, h): (f64, f64, f64, f64),
        fill: &str,
        data: Option<(&str, &str)>,
        title: &str,
    ) {
        let data =
            data.map(|(kind, name)| format!(r#" data-kind="{kind}" data-name="{}""#, escape(name))).unwrap_or_default();
        let _ = write!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{fill}" stroke="white" stroke-width="1"{data}><title>{}</title></rect>"#,
            w.max(0.0),
            escape(title)
        );
    }

    /// A label, left-aligned at (x, y), shown only if it fits `room` pixels (about 7 per
    /// character at 12px).
    pub(crate) fn label(&mut self, x: f64, y: f64, text: &str, room: f64, colour: &str) {
        let fitted: String = text.chars().take((room / 7.0).floor().max(0.0) as usize).collect();
        if fitted.is_empty() {
            return;
        }
        let _ = write!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" font-family="sans-serif" font-size="12" fill="{colour}">{}</text>"#,
            escape(&fitted)
        );
    }
}

/// The plan as an SVG document.
pub fn svg(plan: &Plan) -> String {
    let largest = plan.hosts.iter().map(|h| h.allocatable.millicores).max().unwrap_or(1).max(1);
    let largest_memory = plan.hosts.iter().map(|h| h.allocatable.memory).max().unwrap_or(1).max(1);
    let scale = (WIDTH - LEFT - 20.0) / largest as f64;
    let memory_scale = (WIDTH - LEFT - 20.0) / largest_memory as f64;
    let demand: HashMap<&ObjectKey, Res> = plan.vms.iter().map(|vm| (&vm.vm, vm.demand)).collect();
    let colour: HashMap<&ObjectKey, &str> =
        plan.vms.iter().enumerate().map(|(i, vm)| (&vm.vm, VM_COLOURS[i % VM_COLOURS.len()])).collect();
    // VMs no host takes, in rows of their own under the hosts: (VM, x, row, width).
    let room = WIDTH - LEFT - 20.0;
    let mut misfits = Vec::new();
    let (mut x, mut row) = (0.0, 0usize);
    for vm in plan.unplaced() {
        let w = (vm.demand.millicores as f64 * scale).clamp(4.0, room);
        if x > 0.0 && x + w > room {
            (x, row) = (0.0, row + 1);
        }
        misfits.push((vm, LEFT + x, row, w));
        x += w + 2.0;
    }
    let misfit_rows = misfits.last().map_or(0, |&(_, _, row, _)| row + 1);
    let height = 60.0 + ROW * plan.hosts.len() as f64 + (CPU_BAR + 14.0) * misfit_rows as f64 + 20.0;
    let mut canvas = Canvas { out: String::new() };
    let _ = write!(
        canvas.out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">"#
    );
    let verdict = match &plan.verdict {
        Verdict::Fits => "fits".to_string(),
        Verdict::DoesNotFit { .. } => format!("does NOT fit ({} violations, proven)", plan.violations.len()),
        Verdict::NotFoundWithinBudget { .. } => "does NOT fit within the search budget".to_string(),
    };
    let verdict_colour = if plan.fits { "#2b6e2b" } else { MISFIT };
    let _ = write!(
        canvas.out,
        r#"<text x="10" y="24" font-family="sans-serif" font-size="16" font-weight="bold" fill="{verdict_colour}" data-kind="verdict">{}</text>"#,
        escape(&format!("Plan: {verdict}"))
    );
    canvas.label(10.0, 44.0, "each host: cores (top bar) and memory (thin bar); VMs in colour, their ServiceGroups as pale bands; grey is free", WIDTH, "#555");

    for (row, host) in plan.hosts.iter().enumerate() {
        let y = 60.0 + ROW * row as f64;
        canvas.label(10.0, y + 18.0, &host.name, LEFT - 15.0, "#222");
        canvas.label(
            10.0,
            y + 34.0,
            &format!("{}/{} cores", HumanCores(host.allocated.millicores), HumanCores(host.allocatable.millicores)),
            LEFT - 15.0,
            "#555",
        );
        let width = host.allocatable.millicores as f64 * scale;
        canvas.rect(
            (LEFT, y, width, CPU_BAR),
            FREE,
            Some(("host", &host.name)),
            &format!("{}: {} cores free", host.name, HumanCores(host.free.millicores)),
        );
        let memory_width = host.allocatable.memory as f64 * memory_scale;
        canvas.rect(
            (LEFT, y + CPU_BAR + 4.0, memory_width, MEMORY_BAR),
            FREE,
            None,
            &format!("{} free", HumanBytes(host.free.memory)),
        );
        let (mut x, mut memory_x) = (LEFT, LEFT);
        for key in &host.vms {
            let vm = demand.get(key).copied().unwrap_or_default();
            let w = vm.millicores as f64 * scale;
            let fill = colour.get(key).copied().unwrap_or(VM_COLOURS[0]);
            let title = format!("{key}: {} cores, {}", HumanCores(vm.millicores), HumanBytes(vm.memory));
            canvas.rect((x, y, w, CPU_BAR), fill, Some(("vm", &key.to_string())), &title);
            draw_groups(&mut canvas, plan, key, vm, (x, y, w));
            canvas.label(x + 3.0, y + 19.0, key.name(), w - 6.0, "white");
            let memory_w = vm.memory as f64 * memory_scale;
            canvas.rect((memory_x, y + CPU_BAR + 4.0, memory_w, MEMORY_BAR), fill, None, &title);
            x += w;
            memory_x += memory_w;
        }
    }

    let top = 60.0 + ROW * plan.hosts.len() as f64;
    if !misfits.is_empty() {
        canvas.label(10.0, top + 18.0, &format!("does not fit: {}", misfits.len()), LEFT - 15.0, MISFIT);
        let short = plan.totals.shortfall;
        if short != Res::ZERO {
            canvas.label(
                10.0,
                top + 34.0,
                &format!("short {} cores", HumanCores(short.millicores)),
                LEFT - 15.0,
                MISFIT,
            );
            canvas.label(10.0, top + 50.0, &format!("and {}", HumanBytes(short.memory)), LEFT - 15.0, MISFIT);
        }
    }
    for (vm, x, row, w) in misfits {
        let y = top + (CPU_BAR + 14.0) * row as f64;
        {
            let why = super::reasons(&plan.violations, &super::Subject::vm(&vm.vm));
            let title = format!(
                "{}: {} cores, {}; {}",
                vm.vm,
                HumanCores(vm.demand.millicores),
                HumanBytes(vm.demand.memory),
                why
            );
            canvas.rect((x, y, w, CPU_BAR), MISFIT, Some(("unplaced", &vm.vm.to_string())), &title);
            draw_groups(&mut canvas, plan, &vm.vm, vm.demand, (x, y, w));
            canvas.label(x + 3.0, y + 19.0, vm.vm.name(), w - 6.0, "white");
        }
    }
    canvas.out.push_str("</svg>\n");
    canvas.out
}

/// The ServiceGroups of one VM as bands inside its box: what each takes of the VM's cores, in
/// red with the shortfall when it does not fit.
fn draw_groups(canvas: &mut Canvas, plan: &Plan, vm_key: &ObjectKey, vm: Res, (x, y, width): (f64, f64, f64)) {
    let mut offset = 0.0;
    for group in plan.groups.iter().filter(|g| g.vm == *vm_key) {
        let share = (group.demand.millicores as f64 / vm.millicores.max(1) as f64 * width).min(width - offset).max(2.0);
        let band = (x + offset, y + CPU_BAR - 9.0, share, 7.0);
        if group.fits {
            let title = format!(
                "{}: {} replicas, {} cores, {}",
                group.group,
                group.replicas,
                HumanCores(group.demand.millicores),
                HumanBytes(group.demand.memory)
            );
            canvas.rect(band, GROUP, Some(("group", &group.group.to_string())), &title);
            offset += share;
        } else {
            let missing = group.available.map(|a| group.demand - a).unwrap_or(group.demand);
            let title = format!(
                "{}: does not fit its VM, short by {} cores and {}",
                group.group,
                HumanCores(missing.millicores),
                HumanBytes(missing.memory)
            );
            canvas.rect(
                (x, y + CPU_BAR - 9.0, width, 7.0),
                MISFIT,
                Some(("group-misfit", &group.group.to_string())),
                &title,
            );
        }
    }
}

/// A page that shows the picture, for a browser or a pull-request artifact.
pub fn html(plan: &Plan) -> String {
    let verdict = if plan.fits { "fits" } else { "does NOT fit" };
    let mut rows = String::new();
    for violation in &plan.violations {
        let _ = write!(rows, "<li>{}</li>", escape(&violation.message));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Catalyst plan: {verdict}</title>\
         <style>body{{font-family:sans-serif;margin:20px}} li{{color:{MISFIT}}}</style></head>\
         <body><h1>Catalyst plan: {verdict}</h1>{}<ul id=\"violations\">{rows}</ul></body></html>\n",
        svg(plan)
    )
}
