;; Imports logging but its manifest does not say so.
(component
  (import "wasi:logging/logging@0.1.0-draft" (instance
    (export "f" (func (result u32)))
  ))
)
