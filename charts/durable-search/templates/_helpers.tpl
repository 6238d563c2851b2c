{{/* Names and labels shared by every template. */}}
{{- define "ds.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ds.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "ds.versionLabels" . }}
{{- end -}}

{{- define "ds.versionLabels" -}}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ds.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ds.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ds.webService" -}}
{{ include "ds.fullname" . }}-web
{{- end -}}

{{- define "ds.webHost" -}}
{{ include "ds.webService" . }}.{{ .Release.Namespace }}.svc
{{- end -}}

{{- define "ds.demoHost" -}}
{{ include "ds.fullname" . }}-demo.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* Pod Security "restricted": non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp, read-only root. */}}
{{- define "ds.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ds.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The user name the operator's ServiceAccount authenticates as. */}}
{{- define "ds.operatorUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "ds.fullname" . }}-operator
{{- end -}}
