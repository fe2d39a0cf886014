"""Renders charts/thesa-operator with helm-python-sdk (Helm v4's engine)
under several value sets, lints it, and checks what only a test can:
- values.schema.json refuses bad values;
- the chart's crds/ equal crds/;
- RBAC: every verb on every resource in docs/rbac-calls.txt (the API
  calls the operator's code makes) is granted, and nothing else is.
Writes the rendered manifests to the directory given, for
kubernetes-validate."""
import filecmp, os, sys
import yaml
from helm_python import Chart

out = sys.argv[1]
import helm_python

chart = Chart.load("charts/thesa-operator")
report = helm_python.lint("charts/thesa-operator", strict=True, kube_version="v1.32.0")
problems = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
if problems:
    print(f"validate-chart: helm lint: {problems}", file=sys.stderr)
    sys.exit(1)

def render(values):
    """Renders with `values` over the defaults, after the schema check."""
    chart.validate_schema(chart.merge_values(values))
    return chart.render(values, name="thesa", namespace="thesa-system")

cases = {
    "default": {},
    "namespaced": {
        "watchNamespaces": ["team-a", "team-b"],
        "handlers": ["files.upload"],
        "metrics": {"port": 9090, "serviceMonitor": {"enabled": True}, "bffPodMonitor": {"enabled": True}},
        "prometheusRule": {"enabled": True},
        "webhook": {"enabled": True, "failOpen": True, "timeoutSeconds": 4},
        "tracing": {"otlpEndpoint": "http://otel-collector.observability:4317", "samplingRate": 0.5},
    },
    "single": {"replicas": 1, "leaderElection": {"enabled": False},
               "webhook": {"enabled": True, "certManager": False}},
}
rendered = {}
for name, values in cases.items():
    files = render(values)
    docs = []
    for path, text in sorted(files.items()):
        if path.endswith(".txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    rendered[name] = docs
    with open(os.path.join(out, f"chart-{name}.yaml"), "w") as f:
        yaml.safe_dump_all(docs, f)

def fail(message):
    print(f"validate-chart: {message}", file=sys.stderr)
    sys.exit(1)

# The schema refuses what the chart cannot use.
for bad in [{"replicas": "two"}, {"watchNamespaces": ["Bad_NS"]}, {"leaderElection": {"leaseDuration": "15"}}, {"unknownKey": 1}, {"tracing": {"protocol": "udp"}}]:
    try:
        render(bad)
    except Exception:
        continue
    fail(f"values {bad} were accepted; values.schema.json should refuse them")

# The CRDs are the generated ones.
for crd in os.listdir("crds"):
    if not filecmp.cmp(os.path.join("crds", crd), os.path.join("charts/thesa-operator/crds", crd), shallow=False):
        fail(f"charts/thesa-operator/crds/{crd} differs from crds/{crd}: cp crds/*.yaml charts/thesa-operator/crds/")

# RBAC: granted == the calls the code makes.
calls, self_signed = set(), set()
for line in open("docs/rbac-calls.txt"):
    line = line.split("#")[0].strip()
    if not line:
        continue
    target = calls
    if line.startswith("webhook-self-signed "):
        target, line = self_signed, line.removeprefix("webhook-self-signed ")
    group, resource, verbs = line.split()
    group = "" if group == "core" else group
    for verb in verbs.split(","):
        target.add((group, resource, verb))
def granted(docs, kinds):
    rules = set()
    for d in docs:
        if d["kind"] in kinds:
            for rule in d["rules"]:
                for g in rule["apiGroups"]:
                    for r in rule["resources"]:
                        for v in rule["verbs"]:
                            rules.add((g, r, v))
    return rules
for name, docs in rendered.items():
    have = granted(docs, {"ClusterRole", "Role"})
    if cases[name].get("leaderElection", {}).get("enabled", True) is False:
        need = {c for c in calls if c[1] != "leases"}
    else:
        need = set(calls)
    hook = cases[name].get("webhook", {})
    if hook.get("enabled") and hook.get("certManager") is False:
        need |= self_signed
    if have != need:
        fail(f"{name}: RBAC grants {sorted(have - need)} beyond the calls the code makes and lacks {sorted(need - have)}")
    kinds = [d["kind"] for d in docs]
    if name == "namespaced":
        roles = [d["metadata"].get("namespace") for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "thesa"]
        if sorted(roles) != ["team-a", "team-b"] or "ClusterRoleBinding" in kinds and any(d["metadata"]["name"] == "thesa" for d in docs if d["kind"] == "ClusterRoleBinding"):
            fail("namespaced: expected Roles in team-a and team-b and no cluster-wide binding of the watch rules")
        args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        if "--namespace=team-a,team-b" not in args or "--handler=files.upload" not in args:
            fail(f"namespaced: operator args {args}")
        if "--otlp-endpoint=http://otel-collector.observability:4317" not in args or "--trace-sampling-rate=0.5" not in args:
            fail(f"namespaced: tracing args {args}")
        if not {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= set(kinds):
            fail(f"namespaced: monitoring objects missing from {kinds}")
        hook = next((d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"), None)
        if not hook or hook["webhooks"][0]["failurePolicy"] != "Ignore" or hook["webhooks"][0]["timeoutSeconds"] != 4:
            fail(f"namespaced: webhook configuration {hook}")
        if "--webhook-timeout=3s" not in args or "--webhook-fail-open=true" not in args:
            fail(f"namespaced: webhook args {args}")
    elif name == "single":
        args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        if "--webhook-self-signed=thesa-webhook-tls" not in args or "Certificate" in kinds:
            fail(f"single: self-signed webhook expected, got {args} / {kinds}")
    elif any(d["kind"] == "ValidatingWebhookConfiguration" for d in docs):
        fail(f"{name}: the webhook is opt-in")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if not (pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]):
        fail(f"{name}: the operator must run as non-root on a read-only filesystem")
print(f"validate-chart: {len(cases)} value sets rendered and linted; schema, CRDs and RBAC checked")
