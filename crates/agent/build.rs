//! Generates the kubelet's PodResources client (and, for the tests' fake kubelet, its server)
//! from the vendored `vendor/kubelet/podresources/v1/api.proto`.

fn main() {
    let root = "../../vendor/kubelet/podresources";
    let proto = format!("{root}/v1/api.proto");
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile(["v1/api.proto"], [root]).expect("the vendored PodResources proto compiles");
    tonic_prost_build::configure()
        .build_server(true)
        .compile_fds(descriptors)
        .expect("the PodResources client generates");
}
