# claude-proxy with the pinned Claude Code CLI, as a non-root user (uid 10001) under tini.
#
#   docker build -t claude-proxy .
#   docker run --rm -p 127.0.0.1:8000:8000 \
#     -e CLAUDE_CODE_OAUTH_TOKEN=... -e PROXY_API_KEY="$(openssl rand -hex 32)" \
#     --security-opt seccomp=deploy/seccomp-sandbox.json --security-opt systempaths=unconfined \
#     claude-proxy
#
# Builds with the classic builder and with BuildKit alike; see "Docker" in the README.

ARG CLAUDE_CODE_VERSION=2.1.328

FROM rust:1-bookworm AS build
WORKDIR /src
# The dependencies first, in a layer of their own: a change to the sources does not rebuild
# them. Every target the manifest names must exist, so each gets an empty stand-in.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin bench \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > src/bin/fake_claude.rs \
 && echo 'fn main() {}' > bench/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin claude-proxy \
 && rm -rf src bench
COPY src ./src
COPY bench ./bench
# The dashboard's built files, which the binary holds (built from ui/ and committed: no Node here).
COPY ui/dist ./ui/dist
# COPY keeps the sources' times, which may be older than the stand-ins' build.
RUN find src bench -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --bin claude-proxy

FROM node:22-bookworm-slim AS cli
ARG CLAUDE_CODE_VERSION
# The native program comes in a platform package, an optional dependency: no postinstall
# needed. The platform is the build machine's (TARGETARCH is BuildKit's only).
RUN npm install --prefix /opt/claude-code --no-audit --no-fund --ignore-scripts \
        "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
 && case "$(dpkg --print-architecture)" in \
        amd64) arch=x64 ;; arm64) arch=arm64 ;; \
        *) echo "no Claude Code build for $(dpkg --print-architecture)" >&2; exit 1 ;; \
    esac \
 && cp "/opt/claude-code/node_modules/@anthropic-ai/claude-code-linux-${arch}/claude" /usr/local/bin/claude \
 && /usr/local/bin/claude --version

FROM debian:bookworm-slim
# tini as PID 1 reaps tool processes orphaned inside the container; git and ripgrep are tools
# the CLI uses; curl is for the health check; bubblewrap is each agent's sandbox (it needs
# the two `--security-opt` above, see "Sandbox" in the README).
# The home is the group's too (group 0), so the image also runs as another uid with
# `--user UID:0`, e.g. the owner of a mounted project or ~/.claude.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates curl git ripgrep procps bubblewrap \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --gid 0 claude \
 && mkdir -p /home/claude/workspace /home/claude/data /home/claude/.claude \
 && chown -R claude:0 /home/claude \
 && chmod -R g=u /home/claude
COPY --from=cli /usr/local/bin/claude /usr/local/bin/claude
COPY --from=build /src/target/release/claude-proxy /usr/local/bin/claude-proxy
USER 10001:0
WORKDIR /home/claude/workspace
ENV HOME=/home/claude \
    PROXY_HOST=0.0.0.0 \
    PROXY_PORT=8000 \
    CLAUDE_CLI_PATH=/usr/local/bin/claude \
    CLAUDE_WORKDIR=/home/claude/workspace \
    PROXY_DATA_DIR=/home/claude/data
# Keep them across redeploys: agents, their events and session owners (data), and the CLI's
# login and sessions (.claude), without which a session_id cannot be resumed.
VOLUME ["/home/claude/data", "/home/claude/.claude"]
EXPOSE 8000
# Shell form, so that it asks the port the proxy was given. 503 while the CLI is not logged in.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PROXY_PORT:-8000}/health" >/dev/null || exit 1
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["claude-proxy"]
