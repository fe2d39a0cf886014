{{- define "thesa-operator.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "thesa-operator.labels" -}}
app.kubernetes.io/name: thesa-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "thesa-operator.selector" -}}
app.kubernetes.io/name: thesa-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The rules the controller needs in every namespace it watches: exactly
     the calls it makes as the API server authorizes them (see
     docs/rbac-calls.txt): a server-side apply that creates an object is a
     `create` too. */}}
{{- define "thesa-operator.watchRules" -}}
- apiGroups: ["thesa.io"]
  resources: ["thesadeployments"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["thesa.io"]
  resources: ["thesadefinitions"]
  verbs: ["list", "watch"]
- apiGroups: ["thesa.io"]
  resources: ["thesadeployments/status", "thesadefinitions/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["services", "serviceaccounts"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["pods/proxy"]
  verbs: ["get"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
