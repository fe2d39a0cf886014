-- Argo CD health check for thesa.io ThesaDeployment (Lua 5.1 subset).
-- Order: not yet observed -> Degraded -> failed canary -> paused ->
-- canary or pods rolling out -> Ready. docs/install.md explains the mapping.
local hs = {}

local function condition(type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function failed_rollout()
  if obj.status == nil then
    return nil
  end
  local r = obj.status.rollout
  if r ~= nil and (r.phase == "RolledBack" or r.phase == "Failed" or r.phase == "Aborted") then
    return "canary " .. string.lower(r.phase) .. ": " .. (r.message or "")
  end
  for _, c in ipairs(obj.status.conditions or {}) do
    if c.reason == "RolloutFailed" then
      return "canary rolled back: " .. (c.message or "")
    end
  end
  return nil
end

local generation = obj.metadata and obj.metadata.generation
if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for thesa-operator to reconcile"
  return hs
end
if generation ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for thesa-operator to observe generation " .. generation
  return hs
end

local degraded = condition("Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.reason .. ": " .. (degraded.message or "")
  return hs
end
local failed = failed_rollout()
if failed ~= nil then
  hs.status = "Degraded"
  hs.message = failed
  return hs
end

local progressing = condition("Progressing")
local rollout = obj.status.rollout
if (progressing ~= nil and progressing.reason == "Paused")
    or (rollout ~= nil and rollout.phase == "Paused") then
  hs.status = "Suspended"
  hs.message = (rollout ~= nil and rollout.phase == "Paused" and ("canary paused: " .. (rollout.message or "")))
    or "spec.paused is set: changes are not rolled out"
  return hs
end
if rollout ~= nil and rollout.phase == "Progressing" then
  hs.status = "Progressing"
  hs.message = "canary in progress: " .. (rollout.message or "")
  return hs
end
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = progressing.message or "rolling out"
  return hs
end

local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
hs.status = "Progressing"
hs.message = (ready and ready.message) or "Waiting for pods to be ready"
return hs
