//! The validation rules of the three kinds, written once.
//!
//! Each rule is both a CEL expression that the API server enforces (it is placed in the CRD's
//! `x-kubernetes-validations` at the schema node named in `sits_on`, so `self` is that node)
//! and the message the offline Rust validation in `catalyst_core::validation` reports. The tests
//! evaluate every CEL rule against objects that keep and break it, and check that the Rust
//! validation reports exactly the same rules on the same objects.
//!
//! What a plain OpenAPI bound says (whole cores `minimum: 1`, replicas `minimum: 0`, sizes
//! of strings, lists and maps) is in the schema instead, not in CEL: the API server checks
//! such bounds together with the types and reports them with every other schema error, and
//! they cost nothing of the CEL budget.

/// A CEL validation rule and the message both the API server and the offline check print.
#[derive(Debug, PartialEq)]
pub struct CelRule {
    /// The CEL expression; `self` is the schema node the rule sits on.
    pub cel: &'static str,
    /// What the user reads when the rule is broken.
    pub message: &'static str,
    /// Relative path (from the node the rule sits on) of the field to blame, if not the node itself.
    pub field_path: Option<&'static str>,
}

impl CelRule {
    /// The rule in the form kube's schema derive places into `x-kubernetes-validations`.
    pub fn to_kube(&self) -> kube::core::Rule {
        let rule = kube::core::Rule::new(self.cel).message(self.message);
        match self.field_path {
            Some(path) => rule.field_path(path),
            None => rule,
        }
    }
}

// Quantity fields are int-or-string, as Kubernetes' own are (`memory: 0` or `memory: 512Gi`), so
// CEL sees them as `dyn` and the quantity functions take only the strings. The rules tell the two
// apart with `x == string(x)`, true of a string only: CEL's equality of values of different types
// is false (cel-go v0.22 heterogeneous equality, which Kubernetes v1.32 uses; the cel crate
// alike). `type(x) == string` would say it directly, but kube-cel, which checks these rules
// offline and in the emulator, has no `type()`. The format of each quantity is its schema's
// `pattern` (see below); the rules here compare quantities, and the macros take each operand's
// CEL path.

/// True when the int-or-string quantity `$x` is well formed: any integer, or a quantity string.
macro_rules! well_formed {
    ($x:literal) => {
        concat!("(", $x, " != string(", $x, ") || isQuantity(", $x, "))")
    };
}

/// `$a < $b` for two well-formed int-or-string quantities. Mixed pairs compare exactly as
/// integers where the string is one (`isInteger()`: a whole number within int64), else as floats:
/// a fraction of a byte or core, or a quantity beyond int64, which no integer reaches.
macro_rules! less_than {
    ($a:literal, $b:literal) => {
        concat!(
            "(",
            $a,
            " == string(",
            $a,
            ") ? (",
            $b,
            " == string(",
            $b,
            ") ? quantity(",
            $a,
            ").isLessThan(quantity(",
            $b,
            ")) : ",
            "(quantity(",
            $a,
            ").isInteger() ? quantity(",
            $a,
            ").asInteger() < ",
            $b,
            " : quantity(",
            $a,
            ").asApproximateFloat() < double(",
            $b,
            "))) : ",
            "(",
            $b,
            " == string(",
            $b,
            ") ? (quantity(",
            $b,
            ").isInteger() ? ",
            $a,
            " < quantity(",
            $b,
            ").asInteger() : ",
            "double(",
            $a,
            ") < quantity(",
            $b,
            ").asApproximateFloat()) : ",
            $a,
            " < ",
            $b,
            "))"
        )
    };
}

/// The int-or-string quantity `$x` as a whole number (bytes, for memory).
macro_rules! as_integer {
    ($x:literal) => {
        concat!("(", $x, " == string(", $x, ") ? quantity(", $x, ").asInteger() : ", $x, ")")
    };
}

/// The format of a quantity that is 0 or more, for the strings of an int-or-string field (an
/// integer is held to the schema's `minimum`). It is the pattern controller-gen v0.16 gives every
/// `resource.Quantity` (`pkg/crd/known_types.go`), which a real API server reports as "in body
/// should match", without its minus sign. A plain OpenAPI pattern costs nothing of the CEL
/// budget; a CEL rule on an int-or-string in a list of 16 NUMA cells was refused by a v1.32 API
/// server at twice its budget (the emulator's `cel_cost` tests replay it).
pub const QUANTITY_PATTERN: &str =
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// The format of a positive quantity: the same, with a digit other than 0 in its number.
pub const POSITIVE_QUANTITY_PATTERN: &str = r"^\+?(([0-9]*[1-9][0-9]*(\.[0-9]*)?)|([0-9]*\.[0-9]*[1-9][0-9]*))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

pub const HOST_RESERVED_CPU_BELOW_CAPACITY: CelRule = CelRule {
    cel: "self.reserved.cpu < self.capacity.cpu",
    message: "reserved cpu must be less than capacity cpu",
    field_path: Some(".reserved.cpu"),
};

// Malformed quantities are reported by the field's own rule; the guards keep this rule from
// failing with an evaluation error on top of it.
pub const HOST_RESERVED_MEMORY_BELOW_CAPACITY: CelRule = CelRule {
    cel: concat!(
        "!",
        well_formed!("self.reserved.memory"),
        " || !",
        well_formed!("self.capacity.memory"),
        " || ",
        less_than!("self.reserved.memory", "self.capacity.memory")
    ),
    message: "reserved memory must be less than capacity memory",
    field_path: Some(".reserved.memory"),
};

pub const HOST_NUMA_CPU_WITHIN_CAPACITY: CelRule = CelRule {
    cel: "!has(self.numa) || self.numa.map(c, c.cpu).sum() <= self.capacity.cpu",
    message: "the NUMA cells' cpu must add up to no more than capacity cpu",
    field_path: Some(".numa"),
};

/// Pools no larger than the memory the host does not reserve. Bounded page counts (at most
/// 1Pi of either size, in the schema) keep the sum within CEL's integers.
pub const HOST_HUGEPAGES_WITHIN_MEMORY: CelRule = CelRule {
    cel: concat!(
        "!has(self.hugepages) || !",
        well_formed!("self.capacity.memory"),
        " || !",
        well_formed!("self.reserved.memory"),
        " || (self.capacity.memory == string(self.capacity.memory) && \
         !quantity(self.capacity.memory).isLessThan(quantity('8Ei'))) || \
         (has(self.hugepages.pages1Gi) ? self.hugepages.pages1Gi * 1073741824 : 0) + \
         (has(self.hugepages.pages2Mi) ? self.hugepages.pages2Mi * 2097152 : 0) <= ",
        as_integer!("self.capacity.memory"),
        " - ",
        as_integer!("self.reserved.memory")
    ),
    message: "the hugepage pools must fit in capacity memory less reserved memory",
    field_path: Some(".hugepages"),
};

/// A cell's reserved CPUs are given on every cell or on none, and add up to `reserved.cpu`.
pub const HOST_NUMA_RESERVED_CPU: CelRule = CelRule {
    cel: "!has(self.numa) || self.numa.all(c, !has(c.reservedCpu)) || \
          (self.numa.all(c, has(c.reservedCpu)) && self.numa.map(c, c.reservedCpu).sum() == self.reserved.cpu)",
    message: "the NUMA cells' reservedCpu must be set on every cell or on none, and add up to reserved.cpu",
    field_path: Some(".numa"),
};

/// A cell's hugepage pools are given on every cell or on none, and add up to `hugepages`.
pub const HOST_NUMA_HUGEPAGES: CelRule = CelRule {
    cel: "!has(self.numa) || self.numa.all(c, !has(c.hugepages)) || \
          (self.numa.all(c, has(c.hugepages)) && \
           self.numa.map(c, has(c.hugepages.pages1Gi) ? c.hugepages.pages1Gi : 0).sum() == \
             (has(self.hugepages) && has(self.hugepages.pages1Gi) ? self.hugepages.pages1Gi : 0) && \
           self.numa.map(c, has(c.hugepages.pages2Mi) ? c.hugepages.pages2Mi : 0).sum() == \
             (has(self.hugepages) && has(self.hugepages.pages2Mi) ? self.hugepages.pages2Mi : 0))",
    message: "the NUMA cells' hugepages must be set on every cell or on none, and add up to hugepages",
    field_path: Some(".numa"),
};

/// A cell holds whole physical cores.
pub const HOST_NUMA_WHOLE_CORES: CelRule = CelRule {
    cel: "!has(self.numa) || self.numa.all(c, c.cpu % self.threadsPerCore == 0)",
    message: "each NUMA cell's cpu must be a multiple of threadsPerCore (a cell holds whole cores)",
    field_path: Some(".numa"),
};

/// The kubelet refuses to start a topology manager on more than 8 NUMA nodes
/// (`pkg/kubelet/cm/topologymanager/topology_manager.go`, `defaultMaxAllowableNUMANodes`).
pub const HOST_TOPOLOGY_MANAGER_CELLS: CelRule = CelRule {
    cel: "!has(self.numa) || !has(self.kubelet) || !has(self.kubelet.topologyManagerPolicy) || \
          self.kubelet.topologyManagerPolicy == 'none' || size(self.numa) <= 8",
    message: "a kubelet's topology manager refuses a host of more than 8 NUMA cells (max-allowable-numa-nodes)",
    field_path: Some(".numa"),
};

pub const VM_MEMORY_WHOLE_PAGES: CelRule = CelRule {
    cel: concat!(
        "!has(self.hugepages) || !(self.hugepages in ['2Mi', '1Gi']) || !",
        well_formed!("self.memory"),
        " || ",
        as_integer!("self.memory"),
        " % quantity(self.hugepages).asInteger() == 0"
    ),
    message: "memory must be a whole number of hugepages",
    field_path: Some(".memory"),
};

/// KubeVirt refuses a VM that asks for NUMA passthrough without hugepages
/// (`pkg/virt-api/webhooks/validating-webhook/admitters/vmi-create-admitter.go`:
/// "spec.domain.memory.hugepages must be requested when NUMA topology strategy is set").
pub const VM_NUMA_PASSTHROUGH_NEEDS_HUGEPAGES: CelRule = CelRule {
    cel: "!has(self.numaPassthrough) || !self.numaPassthrough || has(self.hugepages)",
    message: "numaPassthrough needs hugepages: KubeVirt refuses a NUMA-passthrough VM whose memory is not backed by hugepages",
    field_path: Some(".numaPassthrough"),
};

pub const VM_NODE_RESERVED_CPU_BELOW_CPU: CelRule = CelRule {
    cel: "!has(self.node) || !has(self.node.reservedCpu) || self.node.reservedCpu < self.cpu",
    message: "node.reservedCpu must be less than the VM's cpu",
    field_path: Some(".node.reservedCpu"),
};

pub const VM_NODE_RESERVED_MEMORY_BELOW_MEMORY: CelRule = CelRule {
    cel: concat!(
        "!has(self.node) || !has(self.node.reservedMemory) || !",
        well_formed!("self.node.reservedMemory"),
        " || !",
        well_formed!("self.memory"),
        " || ",
        less_than!("self.node.reservedMemory", "self.memory")
    ),
    message: "node.reservedMemory must be less than the VM's memory",
    field_path: Some(".node.reservedMemory"),
};

/// `namespace/name` or `name` of a NetworkAttachmentDefinition, as KubeVirt's
/// `MultusNetwork.networkName` takes it.
pub const VM_MULTUS_NETWORK_NAME: CelRule = CelRule {
    cel: "self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",
    message: "must be namespace/name or name of a NetworkAttachmentDefinition",
    field_path: None,
};

/// A Kubernetes minor or patch release, as pkgs.k8s.io names its repositories (`v1.34`) and
/// packages (`1.34.2`), of v1.31 or later: the rendered JoinConfiguration is
/// `kubeadm.k8s.io/v1beta4`, which kubeadm reads from v1.31 (kubernetes release notes of v1.31,
/// "kubeadm: introduce v1beta4"). The value is written into a shell script, so nothing else passes.
pub const VM_KUBERNETES_VERSION: CelRule = CelRule {
    cel: "self.matches('^v1\\\\.(3[1-9]|[4-9][0-9]|[1-9][0-9]{2})(\\\\.[0-9]{1,3})?$')",
    message: "must be a Kubernetes release of v1.31 or later, such as v1.34 or v1.34.2 (the join is a kubeadm.k8s.io/v1beta4 JoinConfiguration, which kubeadm reads from v1.31)",
    field_path: None,
};

/// A VM that joins says where its node software comes from: a stock image with nothing to
/// join with retries `kubeadm join` for ever.
pub const VM_NODE_JOIN_NEEDS_SOFTWARE: CelRule = CelRule {
    cel: "!has(self.joinSecretName) || has(self.software)",
    message: "a VM that joins (joinSecretName) must name its node software: software.kubernetesVersion, with source Install (cloud-init installs it on a stock image; the default) or Prepared (the boot image holds kubelet, kubeadm and containerd)",
    field_path: Some(".software"),
};

pub const VM_SOFTWARE_REPOSITORY_ONLY_TO_INSTALL: CelRule = CelRule {
    cel: "!has(self.repository) || !has(self.source) || self.source == 'Install'",
    message: "repository is where source Install takes its packages from; a Prepared image installs nothing",
    field_path: Some(".repository"),
};

/// An http(s) URL without a character a shell would read (it is written into the install
/// script): no quotes, spaces, `$`, backquotes, `;`, `&`, `|` or redirections.
pub const VM_PACKAGE_REPOSITORY_URL: CelRule = CelRule {
    cel: "self.matches('^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+:@-]*)*$')",
    message: "must be an http or https URL of letters, digits and ._~%+:@-/ only, such as https://mirror.example.com/kubernetes/v1.34/deb/",
    field_path: None,
};

pub const BOOT_DISK_ONE_SOURCE: CelRule = CelRule {
    cel: "(has(self.containerDisk) ? 1 : 0) + (has(self.dataVolume) ? 1 : 0) + \
          (has(self.persistentVolumeClaim) ? 1 : 0) == 1",
    message: "exactly one of containerDisk, dataVolume or persistentVolumeClaim must be set",
    field_path: None,
};

/// A transition rule at the root of CatalystVM (so `self` is the whole object): once a VM is
/// placed, `spec.host` may stay, be removed or name the host it runs on, never another one.
pub const VM_PLACED_HOST_IS_FIXED: CelRule = CelRule {
    cel: "!has(oldSelf.status) || !has(oldSelf.status.host) || !has(self.spec.host) || \
          (has(oldSelf.spec.host) && self.spec.host == oldSelf.spec.host) || self.spec.host == oldSelf.status.host",
    message: "a placed VM never moves: spec.host may only name the host it runs on (re-create the VM to move it)",
    field_path: Some(".spec.host"),
};

/// Every rule, for tests that check each one is placed in a CRD and exercised.
pub const ALL: [&CelRule; 19] = [
    &HOST_RESERVED_CPU_BELOW_CAPACITY,
    &HOST_RESERVED_MEMORY_BELOW_CAPACITY,
    &HOST_NUMA_CPU_WITHIN_CAPACITY,
    &HOST_HUGEPAGES_WITHIN_MEMORY,
    &HOST_NUMA_RESERVED_CPU,
    &HOST_NUMA_HUGEPAGES,
    &HOST_NUMA_WHOLE_CORES,
    &HOST_TOPOLOGY_MANAGER_CELLS,
    &VM_MEMORY_WHOLE_PAGES,
    &VM_NUMA_PASSTHROUGH_NEEDS_HUGEPAGES,
    &VM_NODE_RESERVED_CPU_BELOW_CPU,
    &VM_NODE_RESERVED_MEMORY_BELOW_MEMORY,
    &VM_MULTUS_NETWORK_NAME,
    &VM_KUBERNETES_VERSION,
    &VM_NODE_JOIN_NEEDS_SOFTWARE,
    &VM_SOFTWARE_REPOSITORY_ONLY_TO_INSTALL,
    &VM_PACKAGE_REPOSITORY_URL,
    &BOOT_DISK_ONE_SOURCE,
    &VM_PLACED_HOST_IS_FIXED,
];
