//! The nine failover states (claims 17-26) and what each one means for the output.
//!
//! The names on the wire, in logs, in `tandem status` and in the documentation are the claims'
//! names exactly (`Primary_offline`, `Primary_no_secondary`, ...); their meaning is in
//! `docs/states.md`, every transition in `docs/failover.md`.

use std::fmt;

/// Which side of the pair a state belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The server that plays the asset on the live group in normal operation.
    Primary,
    /// The server that follows the primary in lockstep and takes over on failure.
    Secondary,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        })
    }
}

/// One of the nine failover states of claims 17-26. "On air" means sending on the live group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum State {
    /// Claim 19. Primary role, not on air: not started, waiting for an asset request, or
    /// stopped by the operator.
    #[serde(rename = "Primary_offline")]
    PrimaryOffline,
    /// Claim 20. On air with no synchronised secondary behind it.
    #[serde(rename = "Primary_no_secondary")]
    PrimaryNoSecondary,
    /// Claim 18. On air with a synchronised secondary behind it.
    #[serde(rename = "Primary")]
    Primary,
    /// Claim 21. A failure was detected on this server; it stopped sending and stays off air
    /// until it restarts or resynchronises as a secondary.
    #[serde(rename = "Failed")]
    Failed,
    /// Claim 23. Secondary role, not running playout.
    #[serde(rename = "Secondary_offline")]
    SecondaryOffline,
    /// Claim 22. Secondary role, in contact with a primary, not yet synchronising.
    #[serde(rename = "Secondary")]
    Secondary,
    /// Claim 24. Receiving parameters, measuring the clock offset, locking the timeline; sends
    /// into the muted group once locked.
    #[serde(rename = "Secondary_synchronizing")]
    SecondarySynchronizing,
    /// Claim 25. In lockstep: sends the identical stream into the muted group.
    #[serde(rename = "Secondary_synchronized")]
    SecondarySynchronized,
    /// Claim 26. The primary was declared failed and this server took the live group.
    #[serde(rename = "Secondary_no_primary")]
    SecondaryNoPrimary,
}

impl State {
    /// Every state, in the order of `docs/states.md`.
    pub const ALL: [State; 9] = [
        State::PrimaryOffline,
        State::PrimaryNoSecondary,
        State::Primary,
        State::Failed,
        State::SecondaryOffline,
        State::Secondary,
        State::SecondarySynchronizing,
        State::SecondarySynchronized,
        State::SecondaryNoPrimary,
    ];

    /// The claims' name of the state (`"Primary_no_secondary"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            State::PrimaryOffline => "Primary_offline",
            State::PrimaryNoSecondary => "Primary_no_secondary",
            State::Primary => "Primary",
            State::Failed => "Failed",
            State::SecondaryOffline => "Secondary_offline",
            State::Secondary => "Secondary",
            State::SecondarySynchronizing => "Secondary_synchronizing",
            State::SecondarySynchronized => "Secondary_synchronized",
            State::SecondaryNoPrimary => "Secondary_no_primary",
        }
    }

    /// Parses a claims' name (exact spelling).
    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether the state sends on the live group (the "on air" column of `docs/states.md`).
    ///
    /// This is what the state *means*; a server in an on-air state may still hold its output
    /// for a moment while it verifies ownership of the live group (see
    /// [`crate::failover::machine::Machine::sending_live`]).
    pub const fn on_air(self) -> bool {
        matches!(
            self,
            State::PrimaryNoSecondary | State::Primary | State::SecondaryNoPrimary
        )
    }

    /// Whether the state always sends into the muted group (the "muted group" column).
    ///
    /// `Secondary_synchronizing` sends muted only once its timeline is locked; that is not
    /// a property of the state alone, so it answers `false` here and
    /// [`crate::failover::machine::Machine::sending_muted`] gives the exact answer.
    pub const fn sends_muted(self) -> bool {
        matches!(self, State::SecondarySynchronized)
    }

    /// The role the state's name belongs to; `None` for `Failed`, which has no role (a failed
    /// server comes back as a secondary).
    ///
    /// `Secondary_no_primary` answers `Secondary` even though it is on air: the roles swap
    /// only when another server has synchronised behind it (it then becomes `Primary`).
    pub const fn role(self) -> Option<Role> {
        match self {
            State::PrimaryOffline | State::PrimaryNoSecondary | State::Primary => {
                Some(Role::Primary)
            }
            State::Failed => None,
            State::SecondaryOffline
            | State::Secondary
            | State::SecondarySynchronizing
            | State::SecondarySynchronized
            | State::SecondaryNoPrimary => Some(Role::Secondary),
        }
    }

    /// The wire code of the state (one byte; see `docs/failover.md`).
    pub const fn code(self) -> u8 {
        match self {
            State::PrimaryOffline => 0,
            State::PrimaryNoSecondary => 1,
            State::Primary => 2,
            State::Failed => 3,
            State::SecondaryOffline => 4,
            State::Secondary => 5,
            State::SecondarySynchronizing => 6,
            State::SecondarySynchronized => 7,
            State::SecondaryNoPrimary => 8,
        }
    }

    /// The state of a wire code, `None` for an unknown code.
    pub const fn from_code(code: u8) -> Option<State> {
        if (code as usize) < State::ALL.len() {
            Some(State::ALL[code as usize])
        } else {
            None
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_claims_names() {
        let names: Vec<String> = State::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            [
                "Primary_offline",
                "Primary_no_secondary",
                "Primary",
                "Failed",
                "Secondary_offline",
                "Secondary",
                "Secondary_synchronizing",
                "Secondary_synchronized",
                "Secondary_no_primary"
            ]
        );
        for s in State::ALL {
            assert_eq!(State::from_name(s.name()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
            let back: State = serde_json::from_str(&format!("\"{}\"", s.name())).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(State::from_name("primary"), None);
    }

    #[test]
    fn columns_match_states_md() {
        let on_air: Vec<State> = State::ALL.into_iter().filter(|s| s.on_air()).collect();
        assert_eq!(
            on_air,
            [
                State::PrimaryNoSecondary,
                State::Primary,
                State::SecondaryNoPrimary
            ]
        );
        let muted: Vec<State> = State::ALL.into_iter().filter(|s| s.sends_muted()).collect();
        assert_eq!(muted, [State::SecondarySynchronized]);
        assert_eq!(State::Failed.role(), None);
        assert_eq!(State::SecondaryNoPrimary.role(), Some(Role::Secondary));
        assert_eq!(State::PrimaryOffline.role(), Some(Role::Primary));
    }

    #[test]
    fn codes_round_trip() {
        for s in State::ALL {
            assert_eq!(State::from_code(s.code()), Some(s));
        }
        assert_eq!(State::from_code(9), None);
        assert_eq!(State::from_code(255), None);
    }
}
