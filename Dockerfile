# fitserve: one image for the API (`fitserve serve`, the default) and the training
# workers (`fitserve worker`); docker-compose.yml picks the command per service.
#
#   docker build -t fitserve:cpu .
#   docker build -t fitserve:gpu --build-arg JAX_EXTRA=cuda12 .
#
# The CUDA build needs no CUDA base image: jax[cuda12] pulls the CUDA and cuDNN
# libraries as pip wheels, and only the host's NVIDIA driver is needed (through
# the NVIDIA container toolkit).
FROM python:3.11-slim

# Which JAX build to install: `cpu`, or `cuda12` for the GPU workers.
ARG JAX_EXTRA=cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FITSERVE_DATA_DIR=/var/lib/fitserve

# A non-root user, and FITSERVE_DATA_DIR owned by it. With an s3:// store
# (docker-compose.yml) that folder is this container's own cache; with a folder
# store it is the store itself, and a fresh volume mounted there takes this
# ownership, so the user can write models and datasets.
RUN useradd --create-home --uid 10001 --user-group fitserve \
    && install -d -o fitserve -g fitserve /var/lib/fitserve

WORKDIR /app

# Dependencies first, from pyproject.toml alone, in their own layer: they are
# large (TensorFlow, JAX) and change far less often than the code.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt "jax[${JAX_EXTRA}]" \
    && rm /tmp/requirements.txt

# Then the packages (those in [tool.setuptools.packages.find]), installed as a
# regular (non-editable) install; their dependencies are already there.
COPY models ./models
COPY service ./service
COPY worker ./worker
RUN pip install --no-deps . && rm -rf build ./*.egg-info

# Run outside /app so `python -m granian` (cwd on sys.path) imports the
# installed packages, not the copied sources.
USER fitserve
WORKDIR /home/fitserve

EXPOSE 8000 8001
CMD ["fitserve", "serve"]
