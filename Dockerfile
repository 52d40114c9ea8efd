# The operator image, which also carries the node agent: `docker build -t catalyst-operator:0.1.0 .`
# Build stage: the workspace, compiled in release mode with the locked dependencies.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
# The whole workspace: cargo reads every member's manifest (e2e/ holds the emulator crate and
# the suite, xtask/ the repository's maintenance; only the tests use them).
COPY crates ./crates
COPY xtask ./xtask
COPY e2e ./e2e
# vendor/ holds the kubelet's PodResources proto the agent's client is generated from.
COPY vendor ./vendor
RUN cargo build --release --locked --bin catalyst-operator --bin catalyst-agent --bin kubectl-catalyst

# Final stage: distroless (glibc, CA certificates, no shell), running as a non-root user.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/catalyst-operator /usr/local/bin/catalyst-operator
COPY --from=build /src/target/release/kubectl-catalyst /usr/local/bin/kubectl-catalyst
# The node agent (the chart's DaemonSet runs it with its own command).
COPY --from=build /src/target/release/catalyst-agent /usr/local/bin/catalyst-agent
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/catalyst-operator"]
