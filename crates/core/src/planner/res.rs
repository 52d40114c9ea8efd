//! What hosts have and VMs take, resource by resource: the planner's arithmetic.

use crate::quantity::{HumanBytes, HumanCores, format_bytes, format_millicores, parse_bytes, parse_millicores};
use catalyst_api::vm::HugepageSize;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Serialize, Serializer};
use std::ops::{Add, AddAssign, Sub};

/// CPU in millicores, ordinary memory and each hugepage pool in bytes, as the kubelet counts
/// them apart: pods ask for whole cores, but a launcher pod's console-log sidecar asks for 15m,
/// and a host must keep that fraction too; a hugepage VM's guest memory comes from its pool,
/// only its overhead from ordinary memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Res {
    #[serde(rename = "cpu", serialize_with = "as_cpu_quantity")]
    pub millicores: u64,
    #[serde(serialize_with = "as_quantity")]
    pub memory: u64,
    #[serde(rename = "hugepages-1Gi", serialize_with = "as_quantity", skip_serializing_if = "is_zero")]
    pub hugepages_1gi: u64,
    #[serde(rename = "hugepages-2Mi", serialize_with = "as_quantity", skip_serializing_if = "is_zero")]
    pub hugepages_2mi: u64,
}

fn is_zero(amount: &u64) -> bool {
    *amount == 0
}

fn as_quantity<S: Serializer>(bytes: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_bytes(*bytes))
}

fn as_cpu_quantity<S: Serializer>(millicores: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_millicores(*millicores))
}

impl Res {
    pub const ZERO: Res = Res { millicores: 0, memory: 0, hugepages_1gi: 0, hugepages_2mi: 0 };

    /// Whole cores and bytes.
    pub fn cores(cores: u64, memory: u64) -> Self {
        Self { millicores: cores.saturating_mul(1000), memory, ..Self::ZERO }
    }

    pub fn millicores(millicores: u64, memory: u64) -> Self {
        Self { millicores, memory, ..Self::ZERO }
    }

    /// `bytes` of hugepages of `size`.
    pub fn hugepages(size: HugepageSize, bytes: u64) -> Self {
        match size {
            HugepageSize::OneGibibyte => Self { hugepages_1gi: bytes, ..Self::ZERO },
            HugepageSize::TwoMebibytes => Self { hugepages_2mi: bytes, ..Self::ZERO },
        }
    }

    /// The bytes of the pool of `size`.
    pub fn pool(&self, size: HugepageSize) -> u64 {
        match size {
            HugepageSize::OneGibibyte => self.hugepages_1gi,
            HugepageSize::TwoMebibytes => self.hugepages_2mi,
        }
    }

    /// Every resource at least that of `other`.
    pub fn covers(&self, other: &Res) -> bool {
        self.millicores >= other.millicores
            && self.memory >= other.memory
            && self.hugepages_1gi >= other.hugepages_1gi
            && self.hugepages_2mi >= other.hugepages_2mi
    }

    pub fn saturating_sub(&self, other: &Res) -> Res {
        self.each(other, u64::saturating_sub)
    }

    /// The smaller of each resource.
    pub fn min_each(&self, other: &Res) -> Res {
        self.each(other, u64::min)
    }

    fn each(&self, other: &Res, op: impl Fn(u64, u64) -> u64) -> Res {
        Res {
            millicores: op(self.millicores, other.millicores),
            memory: op(self.memory, other.memory),
            hugepages_1gi: op(self.hugepages_1gi, other.hugepages_1gi),
            hugepages_2mi: op(self.hugepages_2mi, other.hugepages_2mi),
        }
    }
}

/// For a person: `30.015 cores, 512.3Gi`, and the hugepages where there are any
/// (`, 512Gi of 1Gi hugepages`).
impl std::fmt::Display for Res {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} cores, {}", HumanCores(self.millicores), HumanBytes(self.memory))?;
        for (bytes, size) in [(self.hugepages_1gi, "1Gi"), (self.hugepages_2mi, "2Mi")] {
            if bytes > 0 {
                write!(f, ", {} of {size} hugepages", HumanBytes(bytes))?;
            }
        }
        Ok(())
    }
}

impl Add for Res {
    type Output = Res;
    /// Saturating: totals of hosts or VMs of absurd sizes (a user may write `9Ei`) stay
    /// totals, never an overflow.
    fn add(self, other: Res) -> Res {
        self.each(&other, u64::saturating_add)
    }
}

impl AddAssign for Res {
    fn add_assign(&mut self, other: Res) {
        *self = *self + other;
    }
}

impl Sub for Res {
    type Output = Res;
    /// Saturating: a shortfall is never negative.
    fn sub(self, other: Res) -> Res {
        self.saturating_sub(&other)
    }
}

/// The figures as the API writes them in statuses (CPU and memory as quantities).
impl From<Res> for catalyst_api::Resources {
    fn from(res: Res) -> Self {
        let pool = |bytes: u64| (bytes > 0).then(|| Quantity(format_bytes(bytes)));
        Self {
            cpu: Quantity(format_millicores(res.millicores)),
            memory: Quantity(format_bytes(res.memory)),
            hugepages_1gi: pool(res.hugepages_1gi),
            hugepages_2mi: pool(res.hugepages_2mi),
        }
    }
}

impl From<&catalyst_api::Resources> for Res {
    fn from(resources: &catalyst_api::Resources) -> Self {
        let pool = |quantity: &Option<Quantity>| quantity.as_ref().map_or(0, |q| bytes(&q.0));
        Res {
            millicores: parse_millicores(&resources.cpu.0).unwrap_or(0),
            memory: bytes(&resources.memory.0),
            hugepages_1gi: pool(&resources.hugepages_1gi),
            hugepages_2mi: pool(&resources.hugepages_2mi),
        }
    }
}

fn bytes(quantity: &str) -> u64 {
    parse_bytes(quantity).unwrap_or(0)
}
