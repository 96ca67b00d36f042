{{/* Object names are cut at 63 characters: the limit of a DNS label and of label values. */}}
{{- define "ico.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ico.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ico.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ico.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ico.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ico.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "ico.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ico.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Rules for the namespaced objects the operator reads and writes, in either RBAC mode. */}}
{{- define "ico.workloadRules" -}}
# The releases themselves; kopf patches metadata (finalizers, progress annotations) and status.
- apiGroups: [releases.istio-canary.io]
  resources: [canaryreleases]
  verbs: [get, list, watch, patch, update]
- apiGroups: [releases.istio-canary.io]
  resources: [canaryreleases/status]
  verbs: [get, patch, update]
# The canary Deployment is created from the stable one; offline deletes or scales one.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, update, delete]
# An autoscaled or disruption-protected stable version gets copies of its HPA and PDBs for
# the canary; the operator changes and deletes only the copies it made.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, update, delete]
# Services are read to find the stable Deployment and the ports to route. With routing.mode
# Services, a release creates and deletes one Service per version and patches the released
# Service's selector (restored exactly at the end).
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# Ingresses are only read: one that sends to a released Service bypasses Envoy's routes
# (reported in the MeshOnly condition).
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch]
# Traffic is split with these; adopted ones are patched and restored, owned ones deleted.
- apiGroups: [networking.istio.io]
  resources: [virtualservices, destinationrules]
  verbs: [get, list, watch, create, patch, update, delete]
# kopf and the operator post Events about each release.
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- if .Values.outbound.allowReleasePrometheusUrls }}
# spec.analysis.prometheusAuth names a Secret in the release's namespace, read just before each
# look. get only: the operator never lists or watches Secrets, so it holds none between looks.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
  {{- with .Values.rbac.secretNames }}
  resourceNames:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
