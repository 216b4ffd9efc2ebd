# syntax=docker/dockerfile:1
# claude-proxy with the pinned Claude Code CLI. Build: docker build -t claude-proxy .
# Run:   docker run --rm -p 127.0.0.1:8000:8000 -e CLAUDE_CODE_OAUTH_TOKEN=... claude-proxy

ARG CLAUDE_CODE_VERSION=2.1.328

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Every target the manifest names must exist, even those not built here.
COPY src ./src
COPY bench ./bench
RUN cargo build --release --locked --bin claude-proxy

FROM node:22-bookworm-slim AS cli
ARG CLAUDE_CODE_VERSION
ARG TARGETARCH
# The native program comes in a platform package, an optional dependency: no postinstall needed.
RUN npm install --prefix /opt/claude-code --no-audit --no-fund --ignore-scripts \
        "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
 && arch="$([ "${TARGETARCH:-amd64}" = arm64 ] && echo arm64 || echo x64)" \
 && cp "/opt/claude-code/node_modules/@anthropic-ai/claude-code-linux-${arch}/claude" /usr/local/bin/claude \
 && /usr/local/bin/claude --version

FROM debian:bookworm-slim
# tini as PID 1 reaps tool processes orphaned inside the container; git and ripgrep are tools
# the CLI uses; curl is for the health check; bubblewrap is each agent's sandbox (it needs
# `--security-opt seccomp=deploy/seccomp-sandbox.json`, see the README).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates curl git ripgrep procps bubblewrap \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 claude \
 && mkdir -p /home/claude/workspace /home/claude/data \
 && chown claude:claude /home/claude/workspace /home/claude/data
COPY --from=cli /usr/local/bin/claude /usr/local/bin/claude
COPY --from=build /src/target/release/claude-proxy /usr/local/bin/claude-proxy
USER claude
WORKDIR /home/claude/workspace
ENV PROXY_HOST=0.0.0.0 \
    PROXY_PORT=8000 \
    CLAUDE_CLI_PATH=/usr/local/bin/claude \
    CLAUDE_WORKDIR=/home/claude/workspace \
    PROXY_DATA_DIR=/home/claude/data
# Agents, their events and session owners: keep them across redeploys.
VOLUME ["/home/claude/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["claude-proxy"]
