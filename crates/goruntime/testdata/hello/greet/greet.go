// Package greet is a local module that exists only to appear as a dependency
// (with a replacement) in the build info of the hello program.
package greet

// Hello returns a greeting for name.
func Hello(name string) string { return "hello, " + name }
