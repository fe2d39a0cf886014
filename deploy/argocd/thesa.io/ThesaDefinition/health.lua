-- Argo CD health check for thesa.io ThesaDefinition (Lua 5.1 subset).
-- Order: not yet judged -> rejected -> failed canary -> paused canary ->
-- canary in progress -> Accepted. docs/install.md explains the mapping.
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

local generation = obj.metadata and obj.metadata.generation
if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for thesa-operator to validate this definition"
  return hs
end
if generation ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for thesa-operator to validate generation " .. generation
  return hs
end

local accepted = condition("Accepted")
if accepted ~= nil and accepted.status == "False" then
  hs.status = "Degraded"
  hs.message = accepted.reason .. ": " .. (accepted.message or "")
  return hs
end

local rollout = obj.status.rollout
if rollout ~= nil and (rollout.phase == "RolledBack" or rollout.phase == "Failed" or rollout.phase == "Aborted") then
  hs.status = "Degraded"
  hs.message = "canary " .. string.lower(rollout.phase) .. ": " .. (rollout.message or "")
  return hs
end
for _, c in ipairs(obj.status.conditions or {}) do
  if c.reason == "RolloutFailed" then
    hs.status = "Degraded"
    hs.message = "canary rolled back: " .. (c.message or "")
    return hs
  end
end
if rollout ~= nil and rollout.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "canary paused: " .. (rollout.message or "")
  return hs
end
if rollout ~= nil and rollout.phase == "Progressing" then
  hs.status = "Progressing"
  hs.message = "canary in progress: " .. (rollout.message or "")
  return hs
end

if accepted ~= nil and accepted.status == "True" then
  hs.status = "Healthy"
  hs.message = accepted.message or ""
  return hs
end
hs.status = "Progressing"
hs.message = "Waiting for thesa-operator to validate this definition"
return hs
