# Builds the netintent operator image: a static binary on a distroless base
# that runs as a non-root user. `make docker-build IMG=<registry>/netintent:<tag>`.

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
