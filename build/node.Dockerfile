# syntax=docker/dockerfile:1
# The sequencer node image, ghcr.io/seqops/sequencer-node: cmd/node, static, on distroless as a non-root
# user. The operator runs it as `/node run ...` with the data directory on a volume owned by fsGroup 65532.
# Build from the repository root (see docs/images.md):
#   docker build -f build/node.Dockerfile --build-arg VERSION=v0.1.0 -t ghcr.io/seqops/sequencer-node:v0.1.0 .

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# VERSION is what `node version` prints and what the node reports in its API.
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/node ./cmd/node

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/node /node
USER 65532:65532
# Raft transport, then the node HTTP API (/raft, membership, transactions, blocks, metrics).
EXPOSE 7000 8080
ENTRYPOINT ["/node"]
