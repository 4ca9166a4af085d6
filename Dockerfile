# One image for web, worker and beat (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 EXALATE_VAR_DIR=/var/lib/exalate
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY exalate_console exalate_console
COPY connections connections
COPY sync sync
COPY servicenow_adapter servicenow_adapter
COPY templates templates
COPY static static
COPY manage.py ./
RUN pip install --no-cache-dir -c constraints.txt . && mkdir -p /var/lib/exalate
EXPOSE 8000
CMD ["gunicorn", "exalate_console.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4"]
