# The Tradecore processes, for docker-compose.yml. The services come from their own images.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY commands commands
COPY projections projections
COPY read_api read_api
COPY gateway gateway
COPY infra infra
COPY tradecore tradecore
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["tradecore", "up"]
