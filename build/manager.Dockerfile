# syntax=docker/dockerfile:1
# The operator image, ghcr.io/seqops/sequencer-operator: cmd/manager, static, on distroless as a non-root
# user. Build from the repository root (see docs/images.md):
#   docker build -f build/manager.Dockerfile -t ghcr.io/seqops/sequencer-operator:v0.1.0 .

ARG GO_VERSION=1.26.8

# The builder runs on the build machine's platform and cross-compiles, so multi-platform builds need no emulation.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/manager ./cmd/manager

# distroless/static has CA certificates and tzdata and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/manager /manager
# 65532 is distroless's "nonroot"; numeric, so that runAsNonRoot can verify it.
USER 65532:65532
# Metrics, then /healthz and /readyz (the chart's defaults).
EXPOSE 8080 8081
ENTRYPOINT ["/manager"]
