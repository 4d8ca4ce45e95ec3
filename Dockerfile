# One image for every chapter's service: docker-compose.yml runs it with
# a different command per service (python -m <package> ...). The build
# stage compiles what needs a compiler; the runtime stage gets only the
# virtual environment, and runs as a user without privileges.

FROM python:3.11.11-slim-bookworm AS build
# webrtcvad and a few others build from source where no wheel fits. The
# compiler stays in this stage, so its exact version is left to Debian's
# security updates rather than pinned (hadolint DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The pinned versions of constraints.txt, as `make` installs them; the
# package itself, not editable, with the sample audio as package data.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11.11-slim-bookworm
RUN groupadd --system --gid 10001 speech \
    && useradd --system --uid 10001 --gid speech --create-home \
       --home-dir /app speech
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
EXPOSE 8004 8005 8006 8007 8008 8108 8208 50005 50006
# Ready means ready to serve (chapter 4's /readyz), not merely alive.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "examples.probe", "http://127.0.0.1:8004/readyz"]
CMD ["python", "-m", "ch04_streaming", "--host", "0.0.0.0"]
