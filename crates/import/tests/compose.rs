//! Issue 23: the compose import on real inputs: the design's own compose files (SMS, Kafka,
//! PostgreSQL) and the fixtures of compose-go and docker-compose-types (vendored with their
//! licences under `tests/fixtures/upstream/`, origins in its SOURCES.md).

use catalyst_api::ServiceGroup;
use catalyst_import::compose::{ImportError, Imported, Request, import};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

fn run(path: &str, variables: &[(&str, &str)]) -> Result<Imported, ImportError> {
    run_only(path, variables, &[])
}

fn run_only(path: &str, variables: &[(&str, &str)], only: &[String]) -> Result<Imported, ImportError> {
    let file = fixture(path);
    let text = std::fs::read_to_string(&file).unwrap();
    let dir = file.parent().unwrap().to_path_buf();
    let read = move |relative: &str| std::fs::read_to_string(dir.join(relative)).map_err(|e| e.to_string());
    let variables: BTreeMap<String, String> = variables.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    import(&Request {
        text: &text,
        file: path,
        vm: "sms-services",
        namespace: "catalyst-v3",
        variables: &variables,
        read: &read,
        only,
    })
}

/// What `kubectl catalyst validate` says of the groups, printed as the import prints them.
fn validate(groups: &[ServiceGroup]) {
    let text: Vec<String> = groups.iter().map(|g| catalyst_core::yaml::to_string(g).unwrap()).collect();
    let (manifests, errors) = catalyst_core::manifest::parse("imported.yaml", &text.join("---\n"));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(manifests.groups.len(), groups.len());
}

fn assert_warns(imported: &Imported, expected: &[&str]) {
    let warnings = imported.warnings.join("\n");
    for expected in expected {
        assert!(warnings.contains(expected), "{expected:?} missing in:\n{warnings}");
    }
}

fn env(group: &ServiceGroup) -> BTreeMap<String, String> {
    group.spec.template.env.iter().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect()
}

#[test]
fn the_designs_sms_file_is_one_group_of_twelve_pinned_replicas() {
    let imported = run("design/sms/docker-compose.yml", &[]).unwrap();
    assert_eq!(imported.groups.len(), 1, "{:?}", imported.groups);
    let sms = &imported.groups[0];
    assert_eq!(sms.metadata.name.as_deref(), Some("sms-service"));
    assert_eq!((sms.spec.replicas, sms.spec.cpu, sms.spec.memory.0.as_str()), (12, 8, "42Gi"));
    assert_eq!(sms.spec.vm, "sms-services");
    let env = env(sms);
    assert_eq!(env["SERVICE_ID"], "sms-$(CATALYST_REPLICA_INDEX)");
    assert_eq!(env["TPS_CAPACITY"], "8000");
    assert_eq!(env["DATABASE_URL"], "postgres://catalyst_user:@postgres-primary:5432/catalyst_vas");
    let index = &sms.spec.template.env[0];
    assert_eq!(index.name, "CATALYST_REPLICA_INDEX", "defined before the values that use it");
    let field = index.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
    assert_eq!(field.field_path, "metadata.labels['apps.kubernetes.io/pod-index']");
    let port = &sms.spec.template.ports[0];
    assert_eq!((port.container_port, port.protocol.as_deref()), (8080, Some("TCP")));
    let probe = sms.spec.template.liveness_probe.as_ref().unwrap();
    assert_eq!(
        probe.exec.as_ref().unwrap().command.as_deref().unwrap(),
        ["curl", "-f", "http://localhost:8080/health"]
    );
    assert_eq!((probe.period_seconds, probe.timeout_seconds, probe.failure_threshold), (Some(10), Some(5), Some(3)));
    assert_eq!(sms.spec.template.readiness_probe, sms.spec.template.liveness_probe);
    let services = &sms.metadata.annotations.as_ref().unwrap()["catalyst.io/compose-services"];
    assert!(services.starts_with("sms-service-1,sms-service-2,") && services.ends_with("sms-service-12"), "{services}");
    assert_warns(
        &imported,
        &[
            "variable DB_PASSWORD is not set (first used at services.sms-service-1.environment[3]): it reads as empty",
            "services sms-service-1, sms-service-2, sms-service-3, sms-service-4, sms-service-5, sms-service-6, \
         sms-service-7, sms-service-8, sms-service-9, sms-service-10, sms-service-11, sms-service-12: \
         container_name is not mapped: replicas are named <group>-1 ... <group>-N",
            "sms-service-12: networks is not mapped",
            "service sms-service-12: host port(s) 8012 are not mapped",
            "top-level networks is not mapped",
        ],
    );
    validate(&imported.groups);
}

#[test]
fn a_set_variable_is_used_and_not_reported() {
    let imported = run("design/sms/docker-compose.yml", &[("DB_PASSWORD", "s3cret")]).unwrap();
    assert!(env(&imported.groups[0])["DATABASE_URL"].contains(":s3cret@"));
    assert!(!imported.warnings.iter().any(|w| w.contains("DB_PASSWORD")));
}

#[test]
fn the_designs_kafka_and_postgresql_files_keep_their_sizes() {
    let kafka = run("design/kafka/docker-compose.yml", &[]).unwrap();
    let broker = &kafka.groups[0];
    assert_eq!(broker.metadata.name.as_deref(), Some("kafka-broker-1"));
    assert_eq!((broker.spec.replicas, broker.spec.cpu, broker.spec.memory.0.as_str()), (1, 96, "500Gi"));
    assert_eq!(env(broker)["KAFKA_BROKER_ID"], "1");
    let shell = broker.spec.template.liveness_probe.as_ref().unwrap().exec.as_ref().unwrap().command.clone().unwrap();
    assert_eq!(shell, ["/bin/sh", "-c", "kafka-broker-api-versions.sh --bootstrap-server localhost:9092"]);
    assert!(kafka.warnings.iter().any(|w| w.contains("bind mount /data/kafka on /var/lib/kafka/data is not mapped")));
    validate(&kafka.groups);

    let postgres = run("design/postgres/docker-compose.yml", &[]).unwrap();
    let primary = &postgres.groups[0];
    assert_eq!((primary.spec.cpu, primary.spec.memory.0.as_str()), (128, "750Gi"));
    let storage: Vec<(&str, &str, &str)> = primary
        .spec
        .template
        .storage
        .iter()
        .map(|s| (s.name.as_str(), s.mount_path.as_str(), s.size.0.as_str()))
        .collect();
    assert_eq!(
        storage,
        [("postgres-data", "/var/lib/postgresql/data", "100Mi"), ("postgres-wal", "/var/lib/postgresql/wal", "100Mi")]
    );
    assert!(env(primary)["POSTGRES_INITDB_ARGS"].starts_with("--max_connections=10000 --shared_buffers=200GB"));
    let probe = primary.spec.template.readiness_probe.as_ref().unwrap().exec.as_ref().unwrap().command.clone().unwrap();
    assert_eq!(probe, ["/bin/sh", "-c", "pg_isready -U catalyst_user"]);
    assert!(postgres.warnings.iter().any(|w| w.contains("variable DB_PASSWORD is not set")));
    validate(&postgres.groups);
}

#[test]
fn compose_gos_full_example_maps_what_maps_and_names_the_rest() {
    let variables = [("COMPOSE_PROJECT_NAME", "example")];
    let whole = run("upstream/compose-go/loader/full-example.yml", &variables).unwrap_err().to_string();
    assert!(whole.contains("service bar: image: a ServiceGroup runs an image, and this service names none"), "{whole}");
    let only = ["foo".to_string()];
    let imported = run_only("upstream/compose-go/loader/full-example.yml", &variables, &only).unwrap();
    let foo = &imported.groups[0];
    assert_eq!(foo.metadata.name.as_deref(), Some("foo"));
    // deploy: replicas 6, limits cpus '0.001' and memory 50M, reservations 0.0001 / 20M.
    assert_eq!((foo.spec.replicas, foo.spec.cpu, foo.spec.memory.0.as_str()), (6, 1, "50Mi"));
    let env = env(foo);
    // env_file ./example1.env then ./example2.env, then environment over them; QUX is null in
    // environment and unset in the shell, so the env file's value stays.
    assert_eq!(env["FOO"], "foo_from_env_file");
    assert_eq!(env["BAR"], "bar_from_env_file_2");
    assert_eq!(env["BAZ"], "baz_from_service_def");
    assert_eq!(env["QUX"], "quz_from_env_file_2");
    assert_eq!(foo.spec.template.command, ["/code/entrypoint.sh", "-p", "3000"]);
    assert_eq!(foo.spec.template.args, ["bundle", "exec", "thin", "-p", "3000"]);
    let ports: Vec<i32> = foo.spec.template.ports.iter().map(|p| p.container_port).collect();
    for port in [3000, 3005, 8000, 8080, 8081, 22] {
        assert!(ports.contains(&port), "{port} missing in {ports:?}");
    }
    assert_warns(
        &imported,
        &[
            "service foo: cpus 0.001 becomes 1 whole core(s)",
            "service foo: mem_reservation 20Mi is dropped",
            "service foo: privileged is not mapped: Catalyst gives replicas no host privileges or devices",
            "service foo: depends_on is not mapped",
            "service foo: build is not mapped",
            "service foo: deploy.placement is not mapped",
            "bind mount /opt/data on /var/lib/data is not mapped",
        ],
    );
    validate(&imported.groups);
}

#[test]
fn docker_composes_fixtures_import_or_name_what_they_lack() {
    let v3 = run("upstream/docker-compose-types/tests/fixtures/v3-full/docker-compose.yml", &[]).unwrap();
    assert_eq!(
        (v3.groups[0].spec.replicas, v3.groups[0].spec.cpu, v3.groups[0].spec.memory.0.as_str()),
        (6, 1, "50Mi")
    );
    validate(&v3.groups);
    let compat =
        run("upstream/docker-compose-types/tests/fixtures/compatibility-mode/docker-compose.yml", &[]).unwrap();
    assert_eq!(compat.groups[0].spec.memory.0, "300Mi");
    // These say nothing of CPUs: the import refuses them, naming each service and the field.
    let error = run("upstream/docker-compose-types/tests/fixtures/healthcheck/docker-compose.yml", &[]).unwrap_err();
    let message = error.to_string();
    for service in ["passes", "fails", "disabled"] {
        assert!(message.contains(&format!("service {service}: cpus: no CPU count")), "{message}");
    }
    let error = run("upstream/compose-go/cli/testdata/simple/compose-with-variables.yaml", &[]).unwrap_err();
    assert!(error.to_string().contains("service simple: cpus"), "{error}");
}

/// An inline compose file, with no variables and no env files to read.
fn inline(text: &str) -> Result<Imported, ImportError> {
    let variables = BTreeMap::new();
    let read = |_: &str| Err("no files here".to_string());
    import(&Request { text, file: "c.yml", vm: "vm", namespace: "ns", variables: &variables, read: &read, only: &[] })
}

#[test]
fn bad_input_is_a_clear_error() {
    let attempt = |text: &str| inline(text).unwrap_err().to_string();
    assert_eq!(attempt("just text"), "c.yml: not a compose file: expected a map with services");
    assert_eq!(attempt("version: '3'\n"), "c.yml: no services: a compose file lists them under services");
    assert!(attempt("services: {a: {image: x, cpus: 2}}").contains("service a: mem_limit: no memory"));
    assert!(
        attempt("services: {a: {cpus: 2, mem_limit: 1g}}").contains("service a: image: a ServiceGroup runs an image")
    );
    assert!(
        attempt("services: {a: {image: x, cpus: 2, mem_limit: 1g, deploy: {resources: {limits: {cpus: '4'}}}}}")
            .contains("cpus (2) and deploy.resources (4) disagree")
    );
    assert!(
        attempt("services: {a: {image: x, cpus: 2, mem_limit: 1g, env_file: app.env}}")
            .contains("service a: env_file app.env: no files here")
    );
    assert!(attempt("services: {a: {image: '${X:?set X}'}}").contains("required variable X is missing a value: set X"));
    assert!(attempt(&"[".repeat(10_000)).contains("nested deeper than 64 levels"));
    assert!(attempt("services: {a: {image: x, cpus: 2, mem_limit: 1g, ports: ['1-99999']}}").contains("is not a port"));
    assert!(
        attempt("services: {Web-1: {image: x, cpus: 1, mem_limit: 1g}, web_1: {image: x, cpus: 1, mem_limit: 1g}}")
            .contains("services Web-1 and web_1 are both named web-1 in Kubernetes: rename one")
    );
}

#[test]
fn services_that_do_not_run_one_to_n_stay_apart() {
    let text = "services:\n  web-2: {image: x, cpus: 1, mem_limit: 1g}\n  web-3: {image: x, cpus: 1, mem_limit: 1g}\n  \
                api-1: {image: x, cpus: 1, mem_limit: 1g, environment: [N=1]}\n  \
                api-2: {image: x, cpus: 2, mem_limit: 1g, environment: [N=2]}\n";
    let imported = inline(text).unwrap();
    let names: Vec<&str> = imported.groups.iter().map(|g| g.metadata.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["api-1", "api-2", "web-2", "web-3"]);
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.contains("services web-2, web-3 differ only by their index, but it does not run 1..2"))
    );
}
