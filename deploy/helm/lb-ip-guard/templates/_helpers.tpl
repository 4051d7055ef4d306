{{/*
Objects are named lb-ip-guard whatever the release: the server finds its webhook configurations
by that name, and one webhook per cluster is the supported shape.
*/}}
{{- define "lb-ip-guard.name" -}}lb-ip-guard{{- end -}}

{{- define "lb-ip-guard.selectorLabels" -}}
app.kubernetes.io/name: lb-ip-guard
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "lb-ip-guard.labels" -}}
app.kubernetes.io/name: lb-ip-guard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Namespaces whose Services never reach the webhooks: kube-system and the webhook's own. */}}
{{- define "lb-ip-guard.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ concat (list "kube-system" .Release.Namespace) .Values.excludedNamespaces | uniq | toJson }}
{{- end -}}

{{/*
Same expression as deploy/webhooks.yaml (test/deploy/manifests.test.ts compares them): only
Services that use load-balancer addresses, before or after the change, reach the webhooks.
*/}}
{{- define "lb-ip-guard.matchConditions" -}}
matchConditions:
  - name: service-uses-load-balancer-addresses
    expression: >-
      [object, oldObject].exists(o, o != null && (
        (has(o.spec) && (
          (has(o.spec.type) && o.spec.type == 'LoadBalancer') ||
          (has(o.spec.loadBalancerIP) && o.spec.loadBalancerIP != '') ||
        (has(o.spec.externalIPs) && size(o.spec.externalIPs) > 0))) ||
        (has(o.metadata) && has(o.metadata.annotations) && (
          'lb-ip-guard.dev/auto-assign' in o.metadata.annotations ||
          'metallb.io/loadBalancerIPs' in o.metadata.annotations ||
          'metallb.universe.tf/loadBalancerIPs' in o.metadata.annotations))))
{{- end -}}

{{- /*
The mutating webhook's conditions (deploy/webhooks.yaml): the shared one, and a Service that
opts in to auto-assign or asks for no address (the mutation patches no other).
*/}}
{{- define "lb-ip-guard.mutateMatchConditions" -}}
{{ include "lb-ip-guard.matchConditions" . }}
  - name: service-opts-in-or-asks-for-no-address
    expression: >-
      (has(object.metadata) && has(object.metadata.annotations) &&
        'lb-ip-guard.dev/auto-assign' in object.metadata.annotations) || (
      !(has(object.spec) && has(object.spec.loadBalancerIP) && object.spec.loadBalancerIP != '') &&
      !(has(object.metadata) && has(object.metadata.annotations) && (
        'metallb.io/loadBalancerIPs' in object.metadata.annotations ||
        'metallb.universe.tf/loadBalancerIPs' in object.metadata.annotations)))
{{- end -}}

{{- /*
The status webhook's condition (deploy/webhooks.yaml): a status that serves an address.
*/}}
{{- define "lb-ip-guard.statusMatchConditions" -}}
matchConditions:
  - name: status-has-load-balancer-addresses
    expression: >-
      has(object.status) && has(object.status.loadBalancer) &&
      has(object.status.loadBalancer.ingress) &&
      object.status.loadBalancer.ingress.exists(i, has(i.ip))
{{- end -}}

{{- define "lb-ip-guard.rules" -}}
rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["services"]
    scope: Namespaced
{{- end -}}

{{- /* The cert-manager Certificate of the serving certificate (certManager.enabled). */}}
{{- define "lb-ip-guard.certificateName" -}}lb-ip-guard-serving{{- end -}}

{{- /*
The Secret whose certificate is served, or "" for the server's own bootstrap: tls.secretName,
else cert-manager's when certManager.enabled.
*/}}
{{- define "lb-ip-guard.tlsSecret" -}}
{{- if .Values.tls.secretName -}}
{{- .Values.tls.secretName -}}
{{- else if .Values.certManager.enabled -}}
lb-ip-guard-serving-cert
{{- end -}}
{{- end -}}

{{- /* webhookAnnotations, plus cert-manager's CA injector when certManager.enabled. */}}
{{- define "lb-ip-guard.webhookAnnotations" -}}
{{- $annotations := deepCopy .Values.webhookAnnotations -}}
{{- if .Values.certManager.enabled -}}
{{- $_ := set $annotations "cert-manager.io/inject-ca-from" (printf "%s/%s" .Release.Namespace (include "lb-ip-guard.certificateName" .)) -}}
{{- end -}}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- /* The volume source of clientAuth's CA bundle, or "" when client authentication is off. */}}
{{- define "lb-ip-guard.clientCAVolume" -}}
{{- with .Values.clientAuth -}}
{{- if and .caSecret .caConfigMap -}}
{{- fail "clientAuth: give caSecret or caConfigMap, not both" -}}
{{- else if .caSecret -}}
secret:
  secretName: {{ .caSecret }}
  items: [{key: {{ .key | quote }}, path: {{ .key | quote }}}]
{{- else if .caConfigMap -}}
configMap:
  name: {{ .caConfigMap }}
  items: [{key: {{ .key | quote }}, path: {{ .key | quote }}}]
{{- end -}}
{{- end -}}
{{- end -}}
