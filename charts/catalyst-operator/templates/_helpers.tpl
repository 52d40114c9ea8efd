{{/* The release's full name, at most 63 characters. */}}
{{- define "catalyst.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "catalyst.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "catalyst.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "catalyst.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "catalyst.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- /* The agent's pods carry their own name, so no selector of the operator's (its Deployment, Service, PodDisruptionBudget) ever takes them. */}}
{{- define "catalyst.agentSelectorLabels" -}}
app.kubernetes.io/name: catalyst-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "catalyst.agentName" -}}
{{- printf "%s-agent" (include "catalyst.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
