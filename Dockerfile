# Builds the netintent operator image with a Docker engine: a static binary
# on a distroless base that runs as a non-root user.
# `make docker-build IMG=<registry>/netintent:<tag>`. `make image` builds the
# same binary into an image without Docker, for amd64 and arm64 at once, and
# reproducibly (hack/image).

# Build stage.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download

# The sources (.dockerignore leaves out binaries, tests, manifests and tools).
COPY . .

# CGO off: a static binary that needs no libc in the final image.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /workspace/netintent .

# Final stage: no shell, no package manager, just the binary.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/netintent /netintent
USER 65532:65532
ENTRYPOINT ["/netintent"]
