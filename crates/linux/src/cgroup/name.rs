//! Telling what a cgroup is from its path: a container, a Kubernetes pod, a
//! systemd unit.

/// Who owns a cgroup, as far as its path tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupOwner {
    /// A Kubernetes pod (and container, when the path goes that deep).
    KubernetesPod {
        /// The pod UID, with dashes (`2f0c7a1e-...`).
        pod_uid: String,
        /// The QoS class: `guaranteed`, `burstable` or `besteffort`.
        qos: String,
        /// The container id (64 hex digits), when the path names one.
        container_id: Option<String>,
    },
    /// A container outside Kubernetes (Docker, containerd, CRI-O, Podman).
    Container {
        /// The runtime as the path names it (`docker`, `containerd`, `crio`, `libpod`).
        runtime: String,
        /// The container id (64 hex digits).
        id: String,
    },
    /// A systemd unit: `nginx.service`, `session-3.scope`, `user.slice`.
    SystemdUnit(String),
}

/// Reads the owner of a cgroup from its path (`/proc/PID/cgroup` form), or `None`
/// when the path has no recognisable shape.
///
/// Shapes understood (cgroupfs and systemd drivers):
/// `/kubepods/burstable/pod<uid>/<id>`,
/// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope`,
/// `/docker/<id>`, `/system.slice/docker-<id>.scope`, `/system.slice/nginx.service`.
pub fn describe_cgroup(path: &str) -> Option<CgroupOwner> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(pod) = kubernetes(&parts) {
        return Some(pod);
    }
    // The innermost part that names a container wins.
    for (i, part) in parts.iter().enumerate().rev() {
        if let Some((runtime, id)) = container_in(part) {
            return Some(CgroupOwner::Container { runtime, id });
        }
        // cgroupfs driver: /docker/<id>
        if is_container_id(part) && i > 0 {
            return Some(CgroupOwner::Container {
                runtime: parts[i - 1].to_string(),
                id: part.to_string(),
            });
        }
    }
    parts
        .iter()
        .rev()
        .find(|p| p.ends_with(".service") || p.ends_with(".scope") || p.ends_with(".slice"))
        .map(|unit| CgroupOwner::SystemdUnit(unit.to_string()))
}

fn kubernetes(parts: &[&str]) -> Option<CgroupOwner> {
    let pod_index = parts.iter().position(|p| pod_uid(p).is_some())?;
    if !parts[..pod_index].iter().any(|p| p.starts_with("kubepods")) {
        return None;
    }
    let qos = ["burstable", "besteffort", "guaranteed"]
        .into_iter()
        .find(|q| parts[..pod_index].iter().any(|p| p.contains(q)))
        .unwrap_or("guaranteed");
    let container_id = parts.get(pod_index + 1).and_then(|p| {
        container_in(p)
            .map(|(_, id)| id)
            .or_else(|| is_container_id(p).then(|| p.to_string()))
    });
    Some(CgroupOwner::KubernetesPod {
        pod_uid: pod_uid(parts[pod_index])?,
        qos: qos.to_string(),
        container_id,
    })
}

/// `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid_with_underscores>.slice` (systemd).
fn pod_uid(part: &str) -> Option<String> {
    let part = part.strip_suffix(".slice").unwrap_or(part);
    let start = part.rfind("pod")?;
    let uid = &part[start + 3..];
    let uid = uid.replace('_', "-");
    let ok = uid.len() == 36 && uid.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    ok.then_some(uid)
}

/// `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`.
fn container_in(part: &str) -> Option<(String, String)> {
    let stem = part.strip_suffix(".scope")?;
    let (prefix, id) = stem.rsplit_once('-')?;
    if !is_container_id(id) {
        return None;
    }
    let runtime = match prefix {
        "cri-containerd" => "containerd",
        other => other,
    };
    Some((runtime.to_string(), id.to_string()))
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f3c0d8a9b1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a";

    #[test]
    fn kubernetes_cgroupfs_driver() {
        let path = format!("/kubepods/burstable/pod2f0c7a1e-1234-4cde-9f00-0123456789ab/{ID}");
        assert_eq!(
            describe_cgroup(&path),
            Some(CgroupOwner::KubernetesPod {
                pod_uid: "2f0c7a1e-1234-4cde-9f00-0123456789ab".into(),
                qos: "burstable".into(),
                container_id: Some(ID.into()),
            })
        );
    }

    #[test]
    fn kubernetes_systemd_driver() {
        let path = format!(
            "/kubepods.slice/kubepods-besteffort.slice/\
             kubepods-besteffort-pod2f0c7a1e_1234_4cde_9f00_0123456789ab.slice/cri-containerd-{ID}.scope"
        );
        let Some(CgroupOwner::KubernetesPod {
            pod_uid,
            qos,
            container_id,
        }) = describe_cgroup(&path)
        else {
            panic!("not a pod: {path}");
        };
        assert_eq!(pod_uid, "2f0c7a1e-1234-4cde-9f00-0123456789ab");
        assert_eq!(qos, "besteffort");
        assert_eq!(container_id.as_deref(), Some(ID));
        // A guaranteed pod sits directly under kubepods.
        let path = "/kubepods/pod2f0c7a1e-1234-4cde-9f00-0123456789ab";
        assert!(matches!(
            describe_cgroup(path),
            Some(CgroupOwner::KubernetesPod { qos, container_id: None, .. }) if qos == "guaranteed"
        ));
    }

    #[test]
    fn plain_containers() {
        assert_eq!(
            describe_cgroup(&format!("/docker/{ID}")),
            Some(CgroupOwner::Container {
                runtime: "docker".into(),
                id: ID.into()
            })
        );
        assert_eq!(
            describe_cgroup(&format!("/system.slice/docker-{ID}.scope")),
            Some(CgroupOwner::Container {
                runtime: "docker".into(),
                id: ID.into()
            })
        );
        assert_eq!(
            describe_cgroup(&format!("/machine.slice/libpod-{ID}.scope/container")),
            Some(CgroupOwner::Container {
                runtime: "libpod".into(),
                id: ID.into()
            })
        );
    }

    #[test]
    fn systemd_units_and_unknown_paths() {
        assert_eq!(
            describe_cgroup("/system.slice/mariadb.service"),
            Some(CgroupOwner::SystemdUnit("mariadb.service".into()))
        );
        assert_eq!(
            describe_cgroup("/user.slice/user-0.slice/session-3.scope"),
            Some(CgroupOwner::SystemdUnit("session-3.scope".into()))
        );
        assert_eq!(describe_cgroup("/"), None);
        assert_eq!(
            describe_cgroup("/process_api/7fb0105eaf4e2290d33b6725bb8ba726"),
            None
        );
        // "pod" in a name outside kubepods is not a pod.
        assert_eq!(
            describe_cgroup("/mypod2f0c7a1e-1234-4cde-9f00-0123456789ab"),
            None
        );
    }
}
