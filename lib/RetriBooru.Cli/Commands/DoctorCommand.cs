using RetriBooru.Modeling;
using System.ComponentModel;
using System.Runtime.InteropServices;
using RetriBooru.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

public sealed class DoctorCommand(IAnsiConsole console) : Command<DoctorCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--device <DEVICE>")]
        [Description("cpu (default), cuda, cuda:N or auto.")]
        [DefaultValue("cpu")]
        public string Device { get; init; } = "cpu";

        [CommandOption("--threads <N>")]
        [Description("Intra-op threads for the benchmark (default: libtorch's choice).")]
        public int? Threads { get; init; }

        [CommandOption("--size <N>")]
        [Description("Matrix size of the matmul benchmark.")]
        [DefaultValue(1024)]
        public int Size { get; init; } = 1024;
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var table = new Table().AddColumn("check").AddColumn("value");
        table.AddRow(".NET", Markup.Escape(RuntimeInformation.FrameworkDescription));
        table.AddRow("OS", Markup.Escape($"{RuntimeInformation.OSDescription} ({RuntimeInformation.OSArchitecture})"));
        table.AddRow("TorchSharp", Markup.Escape(TorchRuntime.TorchSharpVersion));
        var libstdcxx = NativeTorchLoader.ProbeLibStdCxx();
        table.AddRow("system libstdc++", Markup.Escape($"{libstdcxx.Path ?? "not found"} (has {NativeTorchLoader.RequiredLibStdCxxVersion}: {(libstdcxx.HasRequiredVersion ? "yes" : "no")})"));
        try
        {
            TorchRuntime.EnsureLoaded();
        }
        catch (TorchLoadException e)
        {
            console.Write(table);
            console.MarkupLine($"[red]TorchSharp failed to load.[/]");
            console.WriteLine(e.Message);
            return ExitCodes.TorchUnavailable;
        }
        var status = NativeTorchLoader.Status;
        string fix = status switch
        {
            null => "not needed (the runtime loaded LibTorchSharp directly)",
            { PatchApplied: true } => $"applied: loaded weakened copy {status.LoadedLibrary}",
            _ => $"not needed (loaded {status.LoadedLibrary})",
        };
        table.AddRow("libstdc++ fix", Markup.Escape(fix));
        table.AddRow("libtorch", Markup.Escape(TorchRuntime.LibTorchVersion));
        var preloaded = NativeTorchLoader.PreloadedLibTorch;
        table.AddRow("libtorch preloaded", Markup.Escape(preloaded.Count == 0 ? "no (shipped files not found; the loader's search decides)" : $"{preloaded.Count} files from {Path.GetDirectoryName(preloaded[^1])}"));
        var device = TorchRuntime.ResolveDevice(settings.Device);
        table.AddRow("CUDA available", TorchRuntime.IsCudaAvailable() ? "yes" : "no");
        table.AddRow("device", Markup.Escape(device.ToString()));
        if (settings.Threads is int threads) TorchRuntime.Threads = threads;
        table.AddRow("threads", TorchRuntime.Threads.ToString());
        table.AddRow("logical cores", Environment.ProcessorCount.ToString());
        table.AddRow("oneDNN kernels", OneDnn.Enabled switch
        {
            true => $"on (the default; {OneDnn.EnvironmentVariable}=0 switches them off)",
            false => OneDnn.SwitchedOff ? $"off ({OneDnn.EnvironmentVariable}=0)" : "off (the switch-on did not take)",
            null => "as libtorch set them (its switch was not found in this build)",
        });
        // The fault oneDNN showed on an AVX-512 EPYC: the model does not depend on it (its 12-channel convolution runs
        // by matmul), but a user's own model with such a convolution would, so say what this CPU does.
        double backwardError = OneDnn.ConvolutionBackwardError();
        table.AddRow("convolution backward check", backwardError < 1e-4
            ? $"right (12 output channels: {backwardError:E1} from unfold + matmul)"
            : $"[yellow]WRONG[/] (12 output channels: {(double.IsNaN(backwardError) ? "NaN" : backwardError.ToString("F2"))} of the gradient's size from unfold + matmul; the workbench's models compute that convolution by matmul, see docs/troubleshooting.md)");
        // The forward fault found later on the same CPU (input channels above 16, not a multiple of 16): the models check
        // each convolution shape once and compute the ones oneDNN gets wrong by matmul (CheckedConvolution).
        bool forwardRight = CheckedConvolution.OneDnnAgrees(24, 16, kernel: 3);
        table.AddRow("convolution 24->16 check", forwardRight
            ? "right (forward and gradients match unfold + matmul)"
            : "[yellow]WRONG[/] (oneDNN's output or gradients differ from unfold + matmul; the workbench's models check every convolution shape once and compute such shapes by matmul, see docs/troubleshooting.md)");
        double gflops = TorchRuntime.MeasureMatmulGflops(settings.Size, onDevice: device);
        table.AddRow($"matmul {settings.Size}x{settings.Size} fp32", $"{gflops:F1} GFLOP/s");
        console.Write(table);
        console.MarkupLine("[green]TorchSharp works.[/]");
        return ExitCodes.Ok;
    }
}
