-- Argo CD health check for shards.anoma.net/ShardSet, following kstatus's conventions
-- (sigs.k8s.io/cli-utils/pkg/kstatus), in kstatus's order, so that Argo CD and Flux
-- agree (Healthy = Current, Progressing = InProgress, Degraded = Failed):
--   1. metadata.deletionTimestamp set                       -> Progressing (deleting)
--   2. status.observedGeneration < metadata.generation      -> Progressing
--   3. Stalled=True (needs a spec change to progress)        -> Degraded
--   4. Reconciling=True or Progressing=True                  -> Progressing
--   5. Degraded=True (a shard keeps failing)                 -> Degraded
--   6. Ready=True                                           -> Healthy
--   7. anything else (no status yet, Ready False/Unknown)    -> Progressing
-- Install as resource.customizations.health.shards.anoma.net_ShardSet in argocd-cm
-- (docs/install.md, "Argo CD health check"); tested by tests/deploy/test_argocd_health.py.
local hs = {}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.reason or fallback
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting"
  return hs
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

local generation = (obj.metadata or {}).generation
local observed = status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = status.conditions
local stalled = condition(conditions, "Stalled")
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local reconciling = condition(conditions, "Reconciling")
if is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "Reconciling")
  return hs
end
local progressing = condition(conditions, "Progressing")
if is_true(progressing) then
  hs.status = "Progressing"
  hs.message = describe(progressing, "Progressing")
  return hs
end

local degraded = condition(conditions, "Degraded")
if is_true(degraded) then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Degraded")
  return hs
end

local ready = condition(conditions, "Ready")
if is_true(ready) then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "Waiting for the Ready condition")
return hs
