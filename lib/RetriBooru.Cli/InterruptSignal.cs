using System.Runtime.InteropServices;

namespace RetriBooru.Cli;

/// <summary>
/// Turns the first Ctrl-C (SIGINT) or SIGTERM (Slurm before its time limit, docker stop, kill) into a cancellation:
/// training stops at the next step boundary and writes a checkpoint, an experiment keeps its finished stages.
/// A second signal takes the default action and ends the process at once.
/// </summary>
public sealed class InterruptSignal : IDisposable
{
    readonly CancellationTokenSource source;
    readonly PosixSignalRegistration[] registrations;

    public InterruptSignal(CancellationToken external = default)
    {
        source = CancellationTokenSource.CreateLinkedTokenSource(external);
        registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
    }

    public CancellationToken Token => source.Token;

    void Handle(PosixSignalContext context)
    {
        if (source.IsCancellationRequested) return;
        context.Cancel = true;
        source.Cancel();
    }

    public void Dispose()
    {
        foreach (var registration in registrations) registration.Dispose();
        source.Dispose();
    }
}
