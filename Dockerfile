FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY relay relay
COPY workers workers
RUN pip install --no-cache-dir .
ENV RELAY_LOG_FORMAT=json
EXPOSE 8000
CMD ["relay", "serve"]
