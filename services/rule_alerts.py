"""Alerts raised by rules and by devices: at most one open alert per patient and alert type,
decided from the store, so that it holds across nodes (CONTRACT 8).

Which alert is the patient's current one of a type is the episode record
(VitalsStore.episode): (alert id, episode number). A new alert is raised for episode n + 1 with
an idempotency key derived from (hospital, patient, type, n + 1), through
`AlertService.create` (committed, then published, like every alert). Two nodes, or two reports
on one node, raising the same episode at once therefore create one alert: the store's
idempotency check (inside the write transaction, decided by the key table's primary key across
writers) hands the second the first one's alert. The key is in a namespace no client can use:
it starts with a control character, which every client-supplied key refuses (schemas.base).

Repeats update the open alert at most once per rule_engine.UPDATE_INTERVAL_S, decided inside
the transaction on the committed alert (`AlertService.update_if_quiet`).

The episode record is cached in memory; a stale copy is harmless: an alert it names that was
resolved is seen as resolved (the alert store's cache is kept fresh cluster-wide), and an
episode it does not know of yet is found through the idempotency key.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from schemas.alerts import Alert, CreateAlertInput, Priority, UpdateAlertInput
from services.alerts import AlertService
from services.rule_engine import UPDATE_INTERVAL_S
from services.vitals_store import VitalsStore

# Reserved namespace: PlainText refuses control characters in client keys.
KEY_PREFIX = "\x1frule:"
EPISODE_CACHE = 50_000
# Raising again when the key of the next episode turns out to name a resolved alert (the
# episode record was behind: a crash between the alert's commit and the record's write).
MAX_EPISODE_SKIPS = 5

EpisodeKey = tuple[str, str, str]


def episode_key(hospital_id: str, patient_id: str, alert_type: str, episode: int) -> str:
    """The idempotency key of an episode's alert: a digest, so that no patient id is stored
    in the key table and the key stays short."""
    digest = hashlib.sha256(f"{hospital_id}\n{patient_id}\n{alert_type}".encode()).hexdigest()
    return f"{KEY_PREFIX}{digest[:40]}:{episode}"


class RuleAlerts:
    def __init__(self, store: VitalsStore, alerts: AlertService) -> None:
        self.store = store
        self.alerts = alerts
        self._episodes: OrderedDict[EpisodeKey, tuple[str, int]] = OrderedDict()

    async def _episode(self, key: EpisodeKey) -> tuple[str, int]:
        found = self._episodes.get(key)
        if found is None:
            found = await self.store.episode(*key)
            self._remember(key, found)
        return found

    def _remember(self, key: EpisodeKey, value: tuple[str, int]) -> None:
        current = self._episodes.get(key)
        if current is not None and current[1] > value[1]:
            return
        self._episodes[key] = value
        self._episodes.move_to_end(key)
        while len(self._episodes) > EPISODE_CACHE:
            self._episodes.popitem(last=False)

    async def open_alert(self, hospital_id: str, patient_id: str, alert_type: str) -> Alert | None:
        """The patient's open alert of this type, if any."""
        alert_id, _ = await self._episode((hospital_id, patient_id, alert_type))
        if not alert_id:
            return None
        record = await self.alerts.store.get(alert_id)
        if record is None or record.alert.status == "resolved":
            return None
        return record.alert

    async def raise_alert(
        self,
        hospital_id: str,
        patient_id: str,
        alert_type: str,
        priority: Priority,
        title: str,
        message: str,
        actor: str,
    ) -> Alert:
        """Raise the next episode's alert (or get the one another writer raised for it)."""
        key = (hospital_id, patient_id, alert_type)
        _, episode = await self._episode(key)
        data = CreateAlertInput(
            hospital_id=hospital_id,
            type=alert_type,
            priority=priority,
            title=title[:200],
            message=message[:2000],
            patient_id=patient_id,
        )
        for _ in range(MAX_EPISODE_SKIPS):
            episode += 1
            # model_copy does not validate: the reserved key goes in as built.
            keyed = data.model_copy(update={"idempotency_key": episode_key(*key, episode)})
            alert = await self.alerts.create(keyed, actor)
            if alert.status != "resolved":
                break
        await self.store.set_episode(hospital_id, patient_id, alert_type, alert.id, episode)
        self._remember(key, (alert.id, episode))
        return alert

    async def repeat(self, alert: Alert, message: str, actor: str) -> Alert | None:
        """The breach goes on: the open alert gets the latest value, at most once per
        UPDATE_INTERVAL_S (None when not now)."""
        update = UpdateAlertInput(alert_id=alert.id, message=message[:2000])
        return await self.alerts.update_if_quiet(update, actor, UPDATE_INTERVAL_S)

    async def raise_or_repeat(
        self,
        hospital_id: str,
        patient_id: str,
        alert_type: str,
        priority: Priority,
        title: str,
        message: str,
        actor: str,
    ) -> Alert | None:
        """For news that needs no rule state (a device gone offline): a new alert when none
        is open, else a (rate-limited) update of the open one."""
        open_alert = await self.open_alert(hospital_id, patient_id, alert_type)
        if open_alert is not None:
            return await self.repeat(open_alert, message, actor)
        return await self.raise_alert(
            hospital_id, patient_id, alert_type, priority, title, message, actor
        )
