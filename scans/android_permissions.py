"""Protection levels of the Android permissions that matter when reading a suspicious app.

Source: the ``android:protectionLevel`` of each ``<permission>`` in AOSP
frameworks/base/core/res/AndroidManifest.xml (Android 14), and the "Permissions overview"
page of developer.android.com. Only dangerous and signature/privileged permissions are
listed; anything else from the ``android.permission`` namespace is shown as "normal", and
permissions of other namespaces (an app's own) as "custom".
"""

from __future__ import annotations

DANGEROUS = frozenset(
    {
        "ACCEPT_HANDOVER",
        "ACCESS_BACKGROUND_LOCATION",
        "ACCESS_COARSE_LOCATION",
        "ACCESS_FINE_LOCATION",
        "ACCESS_MEDIA_LOCATION",
        "ACTIVITY_RECOGNITION",
        "ADD_VOICEMAIL",
        "ANSWER_PHONE_CALLS",
        "BLUETOOTH_ADVERTISE",
        "BLUETOOTH_CONNECT",
        "BLUETOOTH_SCAN",
        "BODY_SENSORS",
        "BODY_SENSORS_BACKGROUND",
        "CALL_PHONE",
        "CAMERA",
        "GET_ACCOUNTS",
        "NEARBY_WIFI_DEVICES",
        "POST_NOTIFICATIONS",
        "PROCESS_OUTGOING_CALLS",
        "READ_CALENDAR",
        "READ_CALL_LOG",
        "READ_CONTACTS",
        "READ_EXTERNAL_STORAGE",
        "READ_MEDIA_AUDIO",
        "READ_MEDIA_IMAGES",
        "READ_MEDIA_VIDEO",
        "READ_MEDIA_VISUAL_USER_SELECTED",
        "READ_PHONE_NUMBERS",
        "READ_PHONE_STATE",
        "READ_SMS",
        "RECEIVE_MMS",
        "RECEIVE_SMS",
        "RECEIVE_WAP_PUSH",
        "RECORD_AUDIO",
        "SEND_SMS",
        "USE_SIP",
        "UWB_RANGING",
        "WRITE_CALENDAR",
        "WRITE_CALL_LOG",
        "WRITE_CONTACTS",
        "WRITE_EXTERNAL_STORAGE",
    }
)

# signature, signature|privileged, or appop-guarded "special" permissions an ordinary app
# cannot simply be granted; malware asks for them and then talks the user into granting them.
SIGNATURE = frozenset(
    {
        "BIND_ACCESSIBILITY_SERVICE",
        "BIND_DEVICE_ADMIN",
        "BIND_NOTIFICATION_LISTENER_SERVICE",
        "BIND_VPN_SERVICE",
        "BROADCAST_SMS",
        "BROADCAST_WAP_PUSH",
        "CHANGE_CONFIGURATION",
        "DELETE_PACKAGES",
        "INSTALL_PACKAGES",
        "MANAGE_EXTERNAL_STORAGE",
        "MODIFY_PHONE_STATE",
        "MOUNT_UNMOUNT_FILESYSTEMS",
        "PACKAGE_USAGE_STATS",
        "READ_LOGS",
        "READ_PRIVILEGED_PHONE_STATE",
        "REBOOT",
        "REQUEST_INSTALL_PACKAGES",
        "SCHEDULE_EXACT_ALARM",
        "SYSTEM_ALERT_WINDOW",
        "WRITE_SECURE_SETTINGS",
        "WRITE_SETTINGS",
        "WRITE_SMS",
    }
)

_PREFIX = "android.permission."


def protection_level(permission: str) -> str:
    """ "dangerous", "signature", "normal" (other android.permission.*) or "custom"."""
    if not permission.startswith(_PREFIX):
        return "custom"
    short = permission[len(_PREFIX) :]
    if short in DANGEROUS:
        return "dangerous"
    if short in SIGNATURE:
        return "signature"
    return "normal"
