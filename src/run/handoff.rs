//! Work that goes to whichever of two chains of a run is free for it first.

use std::sync::{Mutex, PoisonError};

/// A piece of work two chains meet at: the producing chain makes its input, and whichever
/// chain is free first does the work. Neither waits for the other: if the other chain is
/// still busy when the input is ready, the input is handed over and the other chain takes
/// it when it gets there, unless the producer, done with its own work by then, takes it
/// back first; if the other chain finished first, the producer keeps the input and does
/// the work itself.
///
/// Waiting would be wrong on a rayon pool: a chain run inside the other's join (as rayon
/// may do on one thread) would wait for work below it on its own stack.
pub(super) struct Handoff<T> {
    state: Mutex<State<T>>,
}

enum State<T> {
    /// Neither side has arrived.
    Open,
    /// The taking chain finished and left.
    TakerGone,
    /// The producer handed its input over (taken once).
    Handed(Option<T>),
}

impl<T> Handoff<T> {
    /// Neither side has arrived.
    pub(super) fn new() -> Self {
        Handoff {
            state: Mutex::new(State::Open),
        }
    }

    /// The producer has `input`: hands it over if the taking chain is still to come, or
    /// gives it back if that chain has gone, to do the work itself.
    pub(super) fn give(&self, input: T) -> Option<T> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Open => {
                *state = State::Handed(Some(input));
                None
            }
            State::TakerGone | State::Handed(_) => Some(input),
        }
    }

    /// The taking chain is free: the input if it was handed over. Otherwise the chain
    /// leaves, and a later [`Handoff::give`] gives the input back to the producer.
    pub(super) fn take_or_leave(&self) -> Option<T> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *state {
            State::Open => {
                *state = State::TakerGone;
                None
            }
            State::Handed(input) => input.take(),
            State::TakerGone => None,
        }
    }

    /// The producer is free: the input it handed over, if the taking chain has not taken
    /// it yet.
    pub(super) fn take_back(&self) -> Option<T> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *state {
            State::Handed(input) => input.take(),
            State::Open | State::TakerGone => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_given_first_is_taken() {
        let handoff = Handoff::new();
        assert_eq!(handoff.give("symbols"), None);
        assert_eq!(handoff.take_or_leave(), Some("symbols"));
        assert_eq!(handoff.take_or_leave(), None);
    }

    #[test]
    fn an_input_given_after_the_taker_left_comes_back() {
        let handoff = Handoff::new();
        assert_eq!(handoff.take_or_leave(), None);
        assert_eq!(handoff.give("symbols"), Some("symbols"));
    }

    #[test]
    fn an_input_not_yet_taken_can_be_taken_back_once() {
        let handoff = Handoff::new();
        assert_eq!(handoff.take_back(), None);
        assert_eq!(handoff.give("symbols"), None);
        assert_eq!(handoff.take_back(), Some("symbols"));
        assert_eq!(handoff.take_back(), None);
        assert_eq!(handoff.take_or_leave(), None);
    }

    #[test]
    fn an_input_taken_is_not_taken_back() {
        let handoff = Handoff::new();
        assert_eq!(handoff.give("symbols"), None);
        assert_eq!(handoff.take_or_leave(), Some("symbols"));
        assert_eq!(handoff.take_back(), None);
    }

    #[test]
    fn a_taker_that_finds_nothing_never_waits() {
        let handoff: Handoff<u32> = Handoff::new();
        std::thread::scope(|scope| {
            let taker = scope.spawn(|| handoff.take_or_leave());
            assert_eq!(taker.join().unwrap(), None);
        });
        assert_eq!(handoff.give(7), Some(7));
    }
}
