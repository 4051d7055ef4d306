# syntax=docker/dockerfile:1
# lb-ip-guard image: `docker build -t lb-ip-guard:0.1.0 .`
#
# Build stage: compile TypeScript to dist/, then drop the dev dependencies.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the `prepare` script would build before src/ is copied; no dependency needs
# an install script.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
  && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# Run stage: distroless Node 24 (no shell, no package manager), as the nonroot user 65532 that
# deploy/ and the Helm chart also require (runAsNonRoot, runAsUser 65532).
FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/nodejs/bin/node", "--enable-source-maps", "dist/cli/main.js"]
CMD ["serve"]
