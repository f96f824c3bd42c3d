using RetriBooru.Data;
using Spectre.Console;

namespace RetriBooru.Cli.Commands;

/// <summary>Draws <see cref="DatasetProgress"/> reports as Spectre progress bars, one per stage (thread-safe).</summary>
internal static class DatasetProgressDisplay
{
    public static T Run<T>(IAnsiConsole console, Func<IProgress<DatasetProgress>, T> work)
    {
        T result = default!;
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var reporter = new Reporter(context);
                result = work(reporter);
                reporter.CompleteAll();
            });
        return result;
    }

    sealed class Reporter(ProgressContext context) : IProgress<DatasetProgress>
    {
        readonly Dictionary<string, ProgressTask> _tasks = [];

        public void Report(DatasetProgress value)
        {
            lock (_tasks)
            {
                if (!_tasks.TryGetValue(value.Stage, out var task))
                {
                    task = context.AddTask(value.Stage, maxValue: Math.Max(1, value.Total));
                    _tasks[value.Stage] = task;
                }
                if (value.Total > 0)
                {
                    task.MaxValue = value.Total;
                    task.Value = value.Done;
                }
                else
                {
                    // Stages of unknown length (scanning) show a count instead of a bar.
                    task.IsIndeterminate = true;
                    task.Description = $"{value.Stage} ({value.Done:N0} files)";
                }
            }
        }

        public void CompleteAll()
        {
            lock (_tasks)
                foreach (var task in _tasks.Values)
                {
                    task.IsIndeterminate = false;
                    task.Value = task.MaxValue;
                    task.StopTask();
                }
        }
    }
}
