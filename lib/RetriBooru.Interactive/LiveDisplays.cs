using System.Diagnostics;
using System.Net;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Formatting;
using RetriBooru.Experiments;

namespace RetriBooru.Interactive;

/// <summary>
/// A loss chart that redraws in place while a model trains: feed it (step, loss) through
/// <see cref="IProgress{T}"/> and it updates its notebook output at most every <c>minInterval</c>.
/// Outside a notebook (no kernel context) it only records the points, so library code can always use it.
/// </summary>
public sealed class LiveLossChart : IProgress<(int Step, double Loss)>
{
    readonly object _gate = new();
    readonly List<int> _steps = [];
    readonly List<double> _losses = [];
    readonly Stopwatch _sinceDraw = Stopwatch.StartNew();
    readonly TimeSpan _minInterval;
    readonly DisplayedValue? _display;

    public string Name { get; }
    public double Smoothing { get; }
    public IReadOnlyList<int> Steps { get { lock (_gate) return _steps.ToList(); } }
    public IReadOnlyList<double> Losses { get { lock (_gate) return _losses.ToList(); } }
    public int Redraws { get; private set; }

    public LiveLossChart(string name = "loss", double smoothing = 0.6, TimeSpan? minInterval = null)
    {
        Name = name;
        Smoothing = smoothing;
        _minInterval = minInterval ?? TimeSpan.FromSeconds(3);
        _display = KernelInvocationContext.Current is null ? null
            : Kernel.display(Html("<em>waiting for the first step...</em>"), "text/html");
    }

    public void Report((int Step, double Loss) value)
    {
        lock (_gate)
        {
            _steps.Add(value.Step);
            _losses.Add(value.Loss);
            if (_sinceDraw.Elapsed < _minInterval) return;
            _sinceDraw.Restart();
        }
        Redraw();
    }

    /// <summary>Draws the final state (call when training ends, so the last points show).</summary>
    public void Complete() => Redraw();

    public Plotly.NET.GenericChart ToChart()
    {
        lock (_gate) return Charts.LossCurves([new LossSeries(Name, _steps.ToList(), _losses.ToList())], Smoothing, $"{Name} (step {(_steps.Count > 0 ? _steps[^1] : 0)})");
    }

    void Redraw()
    {
        Redraws++;
        if (_display is null) return;
        if (Steps.Count == 0) return;
        _display.Update(Html(WorkbenchFormatters.ChartHtml(ToChart())));
    }

    static HtmlView Html(string html) => new(html);
}

/// <summary>A progress bar in a notebook output, updated in place; a plain IProgress for library calls.</summary>
public sealed class NotebookProgress : IProgress<(double Fraction, string Message)>
{
    readonly DisplayedValue? _display;
    readonly object _gate = new();
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly Stopwatch _sinceDraw = Stopwatch.StartNew();
    public string Label { get; }
    public double LastFraction { get; private set; }

    public NotebookProgress(string label)
    {
        Label = label;
        _display = KernelInvocationContext.Current is null ? null : Kernel.display(new HtmlView(Render(0, "starting")), "text/html");
    }

    public string LastMessage { get; private set; } = "";

    /// <summary>Thread-safe: the dataset pipeline reports from parallel workers.</summary>
    public void Report((double Fraction, string Message) value)
    {
        lock (_gate)
        {
            double previous = LastFraction;
            LastFraction = Math.Clamp(value.Fraction, 0, 1);
            LastMessage = value.Message;
            // Redraw at most twice a second, plus once when a stage completes (headless runners keep every redraw).
            bool completes = LastFraction >= 1 && previous < 1;
            if (_display is null || (_sinceDraw.ElapsedMilliseconds < 500 && !completes)) return;
            _sinceDraw.Restart();
            _display.Update(new HtmlView(Render(LastFraction, value.Message)));
        }
    }

    string Render(double fraction, string message)
    {
        var elapsed = _clock.Elapsed;
        var eta = fraction > 0.01 ? TimeSpan.FromSeconds(elapsed.TotalSeconds * (1 - fraction) / fraction) : (TimeSpan?)null;
        var timing = $"{elapsed:mm\\:ss} elapsed" + (eta is { } e && fraction < 1 ? $", ~{e:mm\\:ss} left" : "");
        return $"<div style=\"font-family:sans-serif;font-size:12px\">{WebUtility.HtmlEncode(Label)}: {WebUtility.HtmlEncode(message)} ({fraction:P0}, {timing})" +
               $"<div style=\"background:#eee;width:320px;height:8px\"><div style=\"background:#4a7;width:{fraction * 100:F1}%;height:8px\"></div></div></div>";
    }
}
