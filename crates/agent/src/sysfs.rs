//! The node's NUMA cells and their CPUs, from sysfs (`devices/system/node/node<N>/cpulist`,
//! Documentation/ABI/stable/sysfs-devices-node in Linux).

use catalyst_api::report::NumaCell;
use catalyst_core::cpuset::CpuSet;
use std::path::Path;

/// The cells under `sys` (normally `/sys`), by id; none when the kernel shows no NUMA nodes
/// (a kernel without NUMA support) or a cell's list cannot be read.
pub fn numa_cells(sys: &Path) -> Vec<NumaCell> {
    let Ok(entries) = std::fs::read_dir(sys.join("devices/system/node")) else { return Vec::new() };
    let mut cells: Vec<NumaCell> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let id: u32 = entry.file_name().to_str()?.strip_prefix("node")?.parse().ok()?;
            let list = std::fs::read_to_string(entry.path().join("cpulist")).ok()?;
            // Written back in the shortest form, so the same CPUs always read the same.
            let cpus = CpuSet::parse(list.trim()).ok()?;
            Some(NumaCell { id, cpus: cpus.to_string() })
        })
        .collect();
    cells.sort_by_key(|cell| cell.id);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_cell_and_ignores_the_rest() {
        let sys = std::env::temp_dir().join(format!("catalyst-sysfs-{}", std::process::id()));
        for (dir, list) in [("node1", "32-63\n"), ("node0", "0-31\n"), ("possible", "")] {
            std::fs::create_dir_all(sys.join("devices/system/node").join(dir)).unwrap();
            std::fs::write(sys.join("devices/system/node").join(dir).join("cpulist"), list).unwrap();
        }
        let cells = numa_cells(&sys);
        std::fs::remove_dir_all(&sys).unwrap();
        assert_eq!(cells, [NumaCell { id: 0, cpus: "0-31".into() }, NumaCell { id: 1, cpus: "32-63".into() }]);
        assert!(numa_cells(Path::new("/nonexistent")).is_empty());
    }
}
