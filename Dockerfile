# One image for every process in the Procfile; the command picks the role.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    QUARRY_VAR_DIR=/data

WORKDIR /app

# The CPU build of torch first, so nothing resolves a CUDA build.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
RUN pip install --no-cache-dir .

COPY migrations ./migrations
COPY alembic.ini flowerconfig.py gunicorn.conf.py wsgi.py Procfile ./

RUN useradd --create-home --uid 10001 quarry && mkdir -p /data && chown quarry /data
USER quarry
VOLUME ["/data"]
EXPOSE 8000

CMD ["gunicorn", "wsgi:app", "-c", "gunicorn.conf.py"]
