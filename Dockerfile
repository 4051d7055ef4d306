# syntax=docker/dockerfile:1
# lb-ip-guard image: `docker build -t lb-ip-guard:0.1.0 .` (or `buildah bud`; `npm run image`
# builds it with buildah and prints its size).
#
# The base images are build arguments so that a machine that cannot pull them builds on local
# stand-ins of the same shape (scripts/image.ts makes them from Debian's packages and the npm
# registry's Node 24): BUILD_IMAGE needs node and npm on PATH and a shell; RUN_IMAGE needs node
# at /nodejs/bin/node and the user 65532, and has no shell. The defaults are what users get.
ARG BUILD_IMAGE=node:24-slim
ARG RUN_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

# Build stage: compile TypeScript to dist/, then drop the dev dependencies.
FROM ${BUILD_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the `prepare` script would build before src/ is copied; no dependency needs
# an install script.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
# `npm run build` is scripts/build.sh.
COPY scripts/build.sh ./scripts/
COPY src ./src
RUN npm run build \
  && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# Run stage: distroless Node 24 (no shell, no package manager), as the nonroot user 65532 that
# deploy/ and the Helm chart also require (runAsNonRoot, runAsUser 65532).
FROM ${RUN_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/nodejs/bin/node", "--enable-source-maps", "dist/cli/main.js"]
CMD ["serve"]
