//! Linux CPU lists (`0-3,8,10-11`), the format of sysfs (`/sys/devices/system/node/node0/cpulist`)
//! and of the kubelet's CPU manager state; parsed within bounds, since a report is user data.

use std::collections::BTreeSet;
use std::fmt;

/// The most CPUs a list may name: Linux's `NR_CPUS` maximum (`CONFIG_NR_CPUS_RANGE_END`, 8192 on
/// x86_64 with `MAXSMP`), so `0-4294967295` is refused instead of allocating 4 billion ids.
pub const MAX_CPUS: u32 = 8192;

/// A set of CPU ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(BTreeSet<u32>);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CpuListError {
    #[error("{0:?} is not a CPU id or a range such as 0-3")]
    NotACpu(String),
    #[error("CPU {0} is beyond the largest id Linux allows ({MAX_CPUS} CPUs)")]
    TooLarge(u32),
    #[error("the range {0}-{1} runs backwards")]
    Backwards(u32, u32),
}

impl CpuSet {
    pub fn parse(list: &str) -> Result<Self, CpuListError> {
        let mut cpus = BTreeSet::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = |text: &str| -> Result<u32, CpuListError> {
                let id: u32 = text.trim().parse().map_err(|_| CpuListError::NotACpu(part.to_string()))?;
                if id >= MAX_CPUS {
                    return Err(CpuListError::TooLarge(id));
                }
                Ok(id)
            };
            let (first, last) = match part.split_once('-') {
                Some((first, last)) => (id(first)?, id(last)?),
                None => (id(part)?, id(part)?),
            };
            if last < first {
                return Err(CpuListError::Backwards(first, last));
            }
            cpus.extend(first..=last);
        }
        Ok(Self(cpus))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }
}

impl FromIterator<u32> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u32>>(ids: I) -> Self {
        Self(ids.into_iter().collect())
    }
}

/// The shortest list: runs of consecutive ids as ranges, `17-24,30`.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids = self.0.iter().copied().peekable();
        let mut first_run = true;
        while let Some(start) = ids.next() {
            let mut end = start;
            while ids.peek() == Some(&(end + 1)) {
                end = ids.next().unwrap_or(end);
            }
            if !first_run {
                f.write_str(",")?;
            }
            first_run = false;
            if start == end { write!(f, "{start}")? } else { write!(f, "{start}-{end}")? }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_linux_cpu_lists() {
        let set = CpuSet::parse("0-3, 8,10-11,2").unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(set.to_string(), "0-3,8,10-11");
        assert_eq!(CpuSet::parse("").unwrap(), CpuSet::default());
        assert_eq!(CpuSet::default().to_string(), "");
        assert_eq!(CpuSet::from_iter([17, 18, 19, 20, 21, 22, 23, 24]).to_string(), "17-24");
    }

    #[test]
    fn refuses_what_linux_would_not_write() {
        assert_eq!(CpuSet::parse("0-4294967295"), Err(CpuListError::TooLarge(4294967295)));
        assert_eq!(CpuSet::parse("8192"), Err(CpuListError::TooLarge(8192)));
        assert_eq!(CpuSet::parse("3-1"), Err(CpuListError::Backwards(3, 1)));
        assert_eq!(CpuSet::parse("a-b"), Err(CpuListError::NotACpu("a-b".into())));
        assert_eq!(CpuSet::parse("1-2-3"), Err(CpuListError::NotACpu("1-2-3".into())));
    }
}
