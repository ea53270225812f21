"""docker-compose.yml and the files it uses, checked without a Docker engine: the services a user
relies on and how they start (docker-compose's own rendering of the file), that the bridge,
haproxy, Prometheus and the executor agree on ports, service names and the consumer group, that
every file mounted from the repository exists and loads (bridge --check-config, haproxy -c,
promtool), that the bridge's health check command passes on a ready bridge and fails on an
unready one, and that the image's runtime packages hold every library the bridge links.

Skipped as a whole only when docker-compose is not installed (.ci/deps installs it); the haproxy
and promtool checks are skipped when those tools are absent."""

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import Names, webhook_flow

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (apt-get install docker-compose)")


@pytest.fixture(scope="module")
def compose():
    """The file as docker-compose renders it: defaults applied, paths made absolute."""
    r = subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), "config"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def mounts(service):
    """(host path, container path) of each bind mount, as docker-compose 1.29 renders them."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            host, target = v.split(":")[:2]
        else:
            host, target = v.get("source"), v["target"]
        if host and host.startswith("/"):
            out.append((Path(host), target))
    return out


def host_file(service, target):
    """The repository file mounted at `target` in the service's container."""
    for host, t in mounts(service):
        if t == target:
            return host
    pytest.fail(f"nothing is mounted at {target}")


def published_ports(service):
    """{published port: (host ip or None, container port)}: docker-compose 1.29 renders a port
    with a host address as the string "IP:PUBLISHED:TARGET/tcp", the others as mappings."""
    out = {}
    for p in service.get("ports", []):
        if isinstance(p, str):
            ip, published, target = p.split("/")[0].split(":")
            out[int(published)] = (ip, int(target))
        else:
            out[int(p["published"])] = (p.get("host_ip"), int(p["target"]))
    return out


def option(argv, name):
    """The value after `name` in an argv list."""
    assert name in argv, f"{name} missing from {argv}"
    return argv[argv.index(name) + 1]


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def bridge_cfg(services):
    """configs/compose.yaml (the file the bridge service is started with), parsed."""
    path = host_file(services["bridge"], option(services["bridge"]["command"], "--config"))
    return yaml.safe_load(path.read_text())


# ==== Services, health checks, start order ====


def test_services_exist(services):
    for name in ("kafka", "bridge", "lb", "executor", "kafka-exporter", "prometheus"):
        assert name in services, f"service {name} missing"
    assert services["kafka"]["image"].startswith("apache/kafka:")


def test_several_bridge_replicas_without_published_ports(services):
    b = services["bridge"]
    assert b.get("deploy", {}).get("replicas", 1) > 1
    # A published port would make the second replica fail to start; lb publishes instead.
    assert not b.get("ports"), b.get("ports")
    ports = published_ports(services["lb"])
    assert 8080 in ports and ports[8080][0] is None, ports
    # Anything else the balancer publishes (its stats page) is for this host only.
    assert all(ip == "127.0.0.1" for n, (ip, _) in ports.items() if n != 8080), ports


def test_health_checks(services):
    # The executor serves nothing to probe; its health is its consumer lag.
    for name in ("kafka", "bridge", "lb", "kafka-exporter", "prometheus"):
        hc = services[name].get("healthcheck")
        assert hc and hc.get("test") and not hc.get("disable"), f"{name}: no health check"
    assert "/ready" in " ".join(services["bridge"]["healthcheck"]["test"])


def test_start_order(services):
    def cond(name, dep):
        return services[name].get("depends_on", {}).get(dep, {}).get("condition")

    assert cond("bridge", "kafka") == "service_healthy"
    assert cond("executor", "kafka") == "service_healthy"
    assert cond("kafka-exporter", "kafka") == "service_healthy"
    assert cond("lb", "bridge") == "service_healthy"
    assert cond("bridge", "kafka-init") == "service_completed_successfully"


def test_every_mounted_file_exists(services):
    seen = 0
    for name, svc in services.items():
        for host, _ in mounts(svc):
            assert host.exists(), f"{name}: {host} does not exist"
            assert REPO in host.parents, f"{name}: {host} is outside the repository"
            seen += 1
    assert seen >= 5


# ==== The bridge, its config and the executor agree ====


def test_bridge_config_loads(services, bridge_bin):
    path = host_file(services["bridge"], option(services["bridge"]["command"], "--config"))
    r = subprocess.run([bridge_bin, "--check-config", "--config", str(path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stdout + r.stderr


def test_bridge_config_for_containers(services, bridge_cfg):
    assert bridge_cfg["listen"] == "0.0.0.0:8080"
    assert bridge_cfg["admin_listen"].startswith("0.0.0.0:")
    assert bridge_cfg["kafka"]["bootstrap_servers"] == "kafka:9092"
    # The flows mounted from the repository are the ones the config reads.
    flows = host_file(services["bridge"], "/etc/webhook-bridge/" + bridge_cfg["flows_dir"])
    assert flows == REPO / "configs" / "flows"


def test_executor_group_is_watched(services, bridge_cfg):
    ex = services["executor"]
    assert ex["entrypoint"] == ["/usr/local/bin/webhook-bridge-executor"]
    assert ex["image"] == services["bridge"]["image"]
    group = option(ex["command"], "--group")
    assert option(ex["command"], "--bootstrap-servers") == "kafka:9092"
    assert group in bridge_cfg["lag"]["groups"]


# ==== haproxy ====


def haproxy_cfg(services):
    return host_file(services["lb"], "/usr/local/etc/haproxy/haproxy.cfg")


def test_haproxy_balances_the_bridge_service(services, bridge_cfg):
    text = haproxy_cfg(services).read_text()
    lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
    templates = [ln.split() for ln in lines if ln.startswith("server-template ")]
    assert len(templates) == 1, templates
    assert templates[0][3] == f"bridge:{port_of(bridge_cfg['listen'])}"
    check = next(ln for ln in lines if ln.startswith("default-server "))
    assert f"port {port_of(bridge_cfg['admin_listen'])}" in check
    assert "resolvers docker" in check
    assert "option httpchk GET /ready" in lines
    webhook_port = published_ports(services["lb"])[8080][1]
    assert f"bind :{webhook_port}" in lines


def test_haproxy_config_is_valid(services):
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    r = subprocess.run(["haproxy", "-c", "-f", str(haproxy_cfg(services))],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


# ==== Prometheus ====


def prometheus_files(services):
    svc = services["prometheus"]
    return (host_file(svc, "/etc/prometheus/prometheus.yml"),
            host_file(svc, "/etc/prometheus/alerts.yml"))


def test_prometheus_scrapes_every_replica_and_the_exporter(services, bridge_cfg):
    cfg = yaml.safe_load(prometheus_files(services)[0].read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    sd = [c for j in jobs.values() for c in j.get("dns_sd_configs", [])]
    assert {"names": ["bridge"], "type": "A", "port": port_of(bridge_cfg["admin_listen"])}.items() \
        <= next(c for c in sd if c["names"] == ["bridge"]).items()
    targets = [t for j in jobs.values() for s in j.get("static_configs", [])
               for t in s["targets"]]
    assert "kafka-exporter:9308" in targets
    assert cfg["rule_files"] == ["alerts.yml"]
    assert "--kafka.server=kafka:9092" in services["kafka-exporter"]["command"]


def test_prometheus_config_is_valid(services):
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    prom, _ = prometheus_files(services)
    r = subprocess.run(["promtool", "check", "config", str(prom)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# ==== The health check command, run against a real bridge ====


def health_command(services, admin_addr):
    """The bridge service's health check, pointed at a bridge started by the test."""
    test = services["bridge"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"], test
    host, port = admin_addr.rsplit(":", 1)
    # docker-compose prints a literal $ as $$, as it must be written in the file.
    script = test[3].replace("$$", "$")
    script = script.replace("/dev/tcp/127.0.0.1/8081", f"/dev/tcp/{host}/{port}")
    assert f"/dev/tcp/{host}/{port}" in script, test[3]
    return ["bash", "-c", script]


def wait_health(cmd, want_ok, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        ok = subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
        if ok == want_ok or time.monotonic() > deadline:
            return ok
        time.sleep(0.2)


def test_health_check_follows_ready(services, kafka_private, bridge_private_factory):
    n = Names()
    b = bridge_private_factory.start([webhook_flow(n.ns, n.flow, n.key)])
    cmd = health_command(services, b.admin_addr)
    assert wait_health(cmd, True), "healthy bridge reported unhealthy"
    kafka_private.all_brokers("down")
    try:
        assert not wait_health(cmd, False), "bridge without Kafka reported healthy"
    finally:
        kafka_private.all_brokers("up")
    assert wait_health(cmd, True, timeout=30.0), "bridge back with Kafka stayed unhealthy"


# ==== The image ====


def runtime_packages():
    """Packages the Dockerfile's last stage installs with apt-get."""
    text = (REPO / "Dockerfile").read_text()
    last = text[text.rindex("\nFROM "):]
    m = re.search(r"apt-get install[^\n]*?((?:\\\n|[^\n])*)", last)
    words = m.group(1).replace("\\\n", " ").split("&&")[0].split()
    return {w for w in words if not w.startswith("-")}


def needed_packages(binary):
    """Debian packages of the libraries a binary names in its dynamic section (DT_NEEDED)."""
    dyn = subprocess.run(["objdump", "-p", binary], capture_output=True, text=True, check=True)
    sonames = re.findall(r"^\s*NEEDED\s+(\S+)", dyn.stdout, re.M)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    pkgs = {}
    for so in sonames:
        if so.startswith("ld-linux"):  # the dynamic loader, named when libc's symbols need it
            pkgs[so] = "libc6"
            continue
        path = Path(paths[so]).resolve()
        r = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True)
        if r.returncode != 0:  # merged /usr: dpkg knows the /lib spelling
            r = subprocess.run(["dpkg", "-S", str(path).removeprefix("/usr")],
                               capture_output=True, text=True)
        assert r.returncode == 0, f"{so}: {path} belongs to no package"
        pkgs[so] = r.stdout.split(":")[0]
    return pkgs


def test_image_runtime_packages_match_the_binary(bridge_bin, proto_decode_bin):
    if shutil.which("dpkg") is None or shutil.which("objdump") is None:
        pytest.skip("needs dpkg and objdump (Debian, binutils)")
    needed = {}
    for binary in (bridge_bin, proto_decode_bin):
        needed.update(needed_packages(binary))
    if any(so.startswith(("libasan", "libubsan")) for so in needed):
        pytest.skip("a sanitizer build links libraries the release image does not ship")
    listed = runtime_packages()
    base = {"libc6"}  # in debian:bookworm-slim
    missing = {so: p for so, p in needed.items() if p not in listed | base}
    assert not missing, f"Dockerfile runtime stage lacks {missing}"
    unused = listed - set(needed.values()) - {"ca-certificates"}
    assert not unused, f"Dockerfile runtime stage installs {unused}, which nothing links"
