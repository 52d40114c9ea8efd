//! Where a NUMA-passthrough VM lies within its host: KubeVirt binds its guest memory strictly
//! to the host cells its cores land on, in equal shares of whole hugepages
//! ([`super::model::CellDemand`]).

use super::model::{self, Res};
use super::{Engine, VmModel};

impl Engine<'_> {
    /// The cells a NUMA-passthrough VM takes on host `h`: its cores, and its hugepages split
    /// equally over the cells its cores land on ([`model::CellDemand`]). A VM is given the
    /// fewest cells its size needs (one, when it is no larger than a cell) and must fit in that
    /// many: spreading a VM that fits one cell over two would put remote memory under its
    /// cores. One cell: the tightest that holds it. Several: those with the most free cores,
    /// each holding at least one of its cores and its share of the pages. Empty when no cell
    /// constraint applies; `None` when the cells cannot hold it.
    pub(super) fn numa_fit(&self, h: usize, vm: &VmModel) -> Option<Vec<(usize, Res)>> {
        let cells = &self.cells_free[h];
        let Some(need) = vm.cells.filter(|_| !cells.is_empty()) else { return Some(Vec::new()) };
        let count = cells_needed(&self.hosts[h].cells, &need)?;
        if count == 1 {
            let whole = Res::millicores(need.millicores, 0) + need.share(0, 1);
            let (c, _) = cells
                .iter()
                .enumerate()
                .filter(|(_, free)| free.covers(&whole))
                .min_by_key(|(c, free)| (**free, *c))?;
            return Some(vec![(c, whole)]);
        }
        let mut chosen: Vec<usize> = (0..cells.len()).collect();
        chosen.sort_by_key(|&c| (std::cmp::Reverse(cells[c].millicores), c));
        chosen.truncate(count);
        spread_over(cells, &chosen, &need)
    }
}

/// The fewest cells of these sizes that could hold `need`, or `None` if all of them cannot.
fn cells_needed(cells: &[Res], need: &model::CellDemand) -> Option<usize> {
    let mut by_cores: Vec<usize> = (0..cells.len()).collect();
    by_cores.sort_by_key(|&c| (std::cmp::Reverse(cells[c].millicores), c));
    (1..=cells.len()).find(|&count| spread_over(cells, &by_cores[..count], need).is_some())
}

/// `need` over exactly the cells `chosen` of `free`: the guest's cells follow the host cells'
/// order, so the lowest-numbered take the odd pages; every cell holds at least one core (a cell
/// without one is not the VM's), and the rest fill the cells in that order.
fn spread_over(free: &[Res], chosen: &[usize], need: &model::CellDemand) -> Option<Vec<(usize, Res)>> {
    let mut in_order = chosen.to_vec();
    in_order.sort_unstable();
    let mut parts: Vec<(usize, Res)> =
        in_order.iter().enumerate().map(|(i, &c)| (c, need.share(i, chosen.len()))).collect();
    if parts.iter().any(|(c, part)| !free[*c].covers(part) || free[*c].millicores < 1000) {
        return None;
    }
    // One core each, then the rest in the cells' order.
    let mut left = need.millicores.checked_sub(1000 * chosen.len() as u64)?;
    for (c, part) in &mut parts {
        part.millicores = 1000;
        let more = (free[*c].millicores - 1000).min(left);
        part.millicores += more;
        left -= more;
    }
    (left == 0).then_some(parts)
}
