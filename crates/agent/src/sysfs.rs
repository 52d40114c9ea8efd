//! The node's NUMA cells, their CPUs and their hugepage pools, from sysfs
//! (`devices/system/node/node<N>/cpulist` and `node<N>/hugepages/hugepages-<kB>kB/{nr,free}_hugepages`:
//! Linux `Documentation/ABI/stable/sysfs-devices-node`, `Documentation/admin-guide/mm/hugetlbpage.rst`).

use catalyst_api::report::{CellHugepages, NumaCell};
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
            Some(NumaCell { id, cpus: cpus.to_string(), hugepages: pools(&entry.path()) })
        })
        .collect();
    cells.sort_by_key(|cell| cell.id);
    cells
}

/// A cell's hugepage pools, by page size, smallest first; a pool whose counts cannot be read is
/// left out.
fn pools(cell: &Path) -> Vec<CellHugepages> {
    let Ok(entries) = std::fs::read_dir(cell.join("hugepages")) else { return Vec::new() };
    let count = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).ok()?.trim().parse::<u64>().ok();
    let mut pools: Vec<(u64, CellHugepages)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let kib: u64 = entry.file_name().to_str()?.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()?;
            let path = entry.path();
            let size = catalyst_core::quantity::format_bytes(kib.checked_mul(1024)?);
            Some((
                kib,
                CellHugepages { size, total: count(&path, "nr_hugepages")?, free: count(&path, "free_hugepages")? },
            ))
        })
        .collect();
    pools.sort_by_key(|(kib, _)| *kib);
    pools.into_iter().map(|(_, pool)| pool).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_each_cell_and_ignores_the_rest() {
        let sys = std::env::temp_dir().join(format!("catalyst-sysfs-{}", std::process::id()));
        let node = sys.join("devices/system/node");
        for (dir, list) in [("node1", "32-63\n"), ("node0", "0-31\n"), ("possible", "")] {
            write(&node.join(dir).join("cpulist"), list);
        }
        // Cell 0 has both pools, cell 1 only 1Gi pages and a pool the kernel is still filling
        // (no free count yet): left out.
        for (pool, total, free) in [
            ("node0/hugepages/hugepages-2048kB", "0\n", "0\n"),
            ("node0/hugepages/hugepages-1048576kB", "512\n", "12\n"),
            ("node1/hugepages/hugepages-1048576kB", "256\n", "256\n"),
        ] {
            write(&node.join(pool).join("nr_hugepages"), total);
            write(&node.join(pool).join("free_hugepages"), free);
        }
        write(&node.join("node1/hugepages/hugepages-2048kB/nr_hugepages"), "8\n");
        let cells = numa_cells(&sys);
        std::fs::remove_dir_all(&sys).unwrap();
        let pool = |size: &str, total, free| CellHugepages { size: size.into(), total, free };
        assert_eq!(
            cells,
            [
                NumaCell { id: 0, cpus: "0-31".into(), hugepages: vec![pool("2Mi", 0, 0), pool("1Gi", 512, 12)] },
                NumaCell { id: 1, cpus: "32-63".into(), hugepages: vec![pool("1Gi", 256, 256)] },
            ]
        );
        assert!(numa_cells(Path::new("/nonexistent")).is_empty());
    }
}
